"""The data a network operator multiplies over: batches, sample counts and a fingerprint.

``data`` is one batch ``(x, y)``, a list of batches, or a re-iterable loader yielding
batches. ``x`` is a tensor or — for models such as Hugging Face transformers that take
several named inputs — a mapping of names to tensors, passed to the model as its one
argument (wrap such a model so that ``model(x)`` returns the logits); ``y`` is a tensor.
The number of samples in a batch is ``x.shape[0]``, or what ``batch_size_fn(x)`` says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

import torch

__all__ = ["DataFingerprint", "batch_source", "count_samples", "is_batch", "sample_of",
           "to_device"]


def _is_input(x: object) -> bool:
    return isinstance(x, torch.Tensor) or (
        isinstance(x, Mapping) and len(x) > 0
        and all(isinstance(t, torch.Tensor) for t in x.values()))


def is_batch(obj: object) -> bool:
    """Whether ``obj`` is one ``(x, y)`` batch.

    Parameters
    ----------
    obj : object
        Candidate batch.

    Returns
    -------
    bool
        True for a pair (tuple or list) of an input — a tensor or a non-empty mapping of
        tensors — and a target tensor.
    """
    return (isinstance(obj, (tuple, list)) and len(obj) == 2 and _is_input(obj[0])
            and isinstance(obj[1], torch.Tensor))


def batch_source(data: object) -> list | Iterable:
    """Check ``data`` and return what to iterate over for one pass.

    Parameters
    ----------
    data : object
        One batch ``(x, y)``, a list or tuple of batches, or a re-iterable loader.

    Returns
    -------
    list or Iterable
        A list of batches (for a batch or a list), or the loader itself.

    Raises
    ------
    TypeError
        If ``data`` is none of these, or a one-shot iterator (each product passes over
        the data again).
    """
    if is_batch(data):
        return [tuple(data)]
    if isinstance(data, (list, tuple)):
        bad = [i for i, b in enumerate(data) if not is_batch(b)]
        if bad:
            raise TypeError(f"data[{bad[0]}] is not an (x, y) pair of an input (a tensor or "
                            "a mapping of tensors) and a target tensor")
        return list(data)
    if isinstance(data, Iterator):
        raise TypeError("data must be re-iterable (each product passes over it again): "
                        "a batch, a list of batches or a DataLoader, not a one-shot "
                        f"iterator or generator ({type(data).__name__})")
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping,
                                                            torch.Tensor)):
        return data
    raise TypeError("data must be an (x, y) batch, a list of batches or a DataLoader, "
                    f"got {type(data).__name__}")


def count_samples(x: Any, batch_size_fn: Callable[[Any], int] | None) -> int:
    """Count the samples in the input ``x`` of a batch.

    Parameters
    ----------
    x : torch.Tensor or mapping of str to torch.Tensor
        A batch's input.
    batch_size_fn : callable or None
        ``batch_size_fn(x)`` → int; None means ``x.shape[0]`` (x must then be a tensor).

    Returns
    -------
    int
        The sample count (≥ 0).

    Raises
    ------
    ValueError
        If x is a mapping and no ``batch_size_fn`` was given, or the count is not a
        non-negative integer.
    """
    if batch_size_fn is None:
        if isinstance(x, Mapping):
            raise ValueError("x is a mapping of tensors: pass batch_size_fn (e.g. "
                             "lambda x: x['input_ids'].shape[0]) to say how many samples "
                             "a batch holds")
        return int(x.shape[0])
    n = batch_size_fn(x)
    if isinstance(n, torch.Tensor) and n.numel() == 1:
        n = n.item()
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"batch_size_fn must return a non-negative int, got {n!r}")
    return n


def to_device(x: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Move an input or target to ``device``; floating tensors also to ``dtype``.

    Parameters
    ----------
    x : torch.Tensor or mapping of str to torch.Tensor
        A batch's input or target. Integer tensors (labels, token ids) keep their dtype.
    device : torch.device
        Target device.
    dtype : torch.dtype
        Target floating dtype.

    Returns
    -------
    torch.Tensor or dict of str to torch.Tensor
        The moved tensor(s).
    """
    if isinstance(x, Mapping):
        return {k: to_device(t, device, dtype) for k, t in x.items()}
    x = x.to(device)
    return x.to(dtype) if x.is_floating_point() else x


def sample_of(x: Any, y: torch.Tensor, i: int) -> tuple[Any, torch.Tensor]:
    """Return the i-th sample of a batch as a batch of one (tensors sliced along dim 0).

    Parameters
    ----------
    x : torch.Tensor or mapping of str to torch.Tensor
        A batch's input.
    y : torch.Tensor
        The batch's targets.
    i : int
        Sample index.

    Returns
    -------
    tuple
        ``(x[i:i+1], y[i:i+1])``, sliced per tensor for a mapping.
    """
    if isinstance(x, Mapping):
        return {k: t[i:i + 1] for k, t in x.items()}, y[i:i + 1]
    return x[i:i + 1], y[i:i + 1]


class DataFingerprint:
    """A cheap summary of one pass over a loader, to catch data that change between passes.

    A curvature operator must be one fixed matrix, so every product must see the same
    samples. A loader that augments at random (crops, flips) does not, and with
    ``bn_mode="frozen-train"`` neither does a shuffling one, since each batch's statistics
    enter the function; both would silently turn Lanczos into a method on a moving
    operator. Per batch: every input tensor projected on a fixed random direction, the
    targets' sum and the count, in float64; unordered (only their totals compared, since
    the order of the samples does not change the mean Hessian) or batch by batch.

    Parameters
    ----------
    ordered : bool
        Compare batch by batch (True) or only the totals over the pass (False).
    """

    # Fixed random directions, per (sample size, device); shared by all fingerprints so
    # that two passes project on the same directions.
    _directions: ClassVar[dict[tuple, torch.Tensor]] = {}

    def __init__(self, ordered: bool):
        self.ordered, self.parts = ordered, []

    def _project(self, t: torch.Tensor) -> torch.Tensor:
        flat = t.reshape(t.shape[0], -1) if t.ndim > 0 else t.reshape(1, 1)
        key = (flat.shape[1], str(flat.device))
        if key not in self._directions:
            r = torch.randn(flat.shape[1], dtype=torch.float64,
                            generator=torch.Generator().manual_seed(12345))
            self._directions[key] = r.to(flat.device)
        return (flat.to(torch.float64) @ self._directions[key]).sum()

    def add(self, x: Any, y: torch.Tensor, n: int) -> None:
        """Record one batch.

        Parameters
        ----------
        x : torch.Tensor or mapping of str to torch.Tensor
            The batch's input.
        y : torch.Tensor
            The batch's targets.
        n : int
            Its sample count.
        """
        inputs = x.values() if isinstance(x, Mapping) else [x]
        proj = sum(self._project(t) for t in inputs)
        self.parts.append(torch.stack([proj, y.to(torch.float64).sum(),
                                       torch.tensor(float(n), dtype=torch.float64,
                                                    device=y.device)]))

    def value(self) -> torch.Tensor | None:
        """Return the fingerprint of the batches added so far (None if there were none).

        Returns
        -------
        torch.Tensor or None
            A (batches, 3) tensor if ordered, else its column sums.
        """
        if not self.parts:
            return None
        stacked = torch.stack([p.cpu() for p in self.parts])
        return stacked if self.ordered else stacked.sum(dim=0)

    @staticmethod
    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        """Whether two fingerprints agree to float64 rounding of the sums.

        Parameters
        ----------
        a : torch.Tensor
            One fingerprint.
        b : torch.Tensor
            The other.

        Returns
        -------
        bool
            True if they have equal shapes and agree to relative 1e-9.
        """
        return a.shape == b.shape and bool(((a - b).abs()
                                            <= 1e-9 * (a.abs() + b.abs()) + 1e-12).all())
