"""Hessian and Gauss–Newton operators of a network over one batch, a subset or all data.

For the mean loss L(w) = (1/N) Σ_i ℓ_i(w) over the N samples in ``data``,
:class:`HessianOperator` multiplies by H = ∇²L = (1/N) Σ_i H_i and :class:`GGNOperator` by
the generalised Gauss–Newton G = (1/N) Σ_i J_iᵀ H_ℓ,i J_i. With ``data`` one batch of size
B this is H_batch of Granziol, Zohren & Roberts (2022, Eq. 4); with the whole training set
it is H_emp; ``batch_op - full_op`` is their noise matrix ε.

Weighting: the operators are always those of the *mean* loss over samples, whatever the
loss's ``reduction``. A batch b of n_b samples whose loss is a mean contributes
(n_b/N)·H_b, so an uneven last batch is weighted by its size, not equally with the others;
a batch loss that is a sum (``reduction="sum"``) is itself n_b times a mean and contributes
(1/N)·∇²(sum). ``reduction="none"`` is refused (a curvature needs a scalar loss).

:class:`NetworkOperator` holds what both operators share: the snapshot of the model's
parameters, the data (:mod:`rmtlr.curvature.batches`), the weighting, and the restoration of
the model's state after every product; the per-batch products themselves are
:class:`rmtlr.curvature.hvp.BatchProducts`.
"""

from __future__ import annotations

import copy
import functools
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from rmtlr.curvature.base import CurvatureOperator, all_finite
from rmtlr.curvature.batches import (
    DataFingerprint,
    batch_source,
    count_samples,
    sample_of,
    to_device,
)
from rmtlr.curvature.hvp import BN_MODES, HVP_METHODS, BatchProducts, batch_norm_statistics
from rmtlr.curvature.params import vector_to_params
from rmtlr.profiles import resolve_device
from rmtlr.progress import progress_bar

__all__ = ["LOSS_REDUCTIONS", "GGNOperator", "HessianOperator", "NetworkOperator", "ggn_vector_product",
           "hessian_vector_product", "model_state_preserved"]

#: Loss reductions an operator accepts (see the module docstring).
LOSS_REDUCTIONS = ("mean", "sum")

# method="auto" decisions, per model object (weakly held, so a deleted model frees its
# entry) and per setting that changes the timing; a decision that later fails on a batch is
# replaced by the other method (HessianOperator._hvp).
_AUTO_CHOICE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, str]] = (
    weakref.WeakKeyDictionary())

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


class model_state_preserved:
    """Context manager: restore every module's train/eval flag, buffers and ``.grad``.

    The products never write ``.grad`` (they use ``torch.autograd.grad`` and ``torch.func``),
    so the gradients are kept by reference and put back as the same tensor objects: views
    into a flat gradient buffer (DDP buckets, fused optimisers) stay views.

    Parameters
    ----------
    model : torch.nn.Module
        The model whose state is saved on entry and restored on exit.
    """

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self) -> model_state_preserved:  # noqa: PYI034  (Self needs Python 3.11)
        """Save the flags, a copy of the buffers and the ``.grad`` references."""
        m = self.model
        self.flags = {mod: mod.training for mod in m.modules()}
        self.buffers = {k: b.detach().clone() for k, b in m.named_buffers()}
        self.grads = {k: p.grad for k, p in m.named_parameters()}
        return self

    def __exit__(self, *exc: object) -> bool:
        """Restore what :meth:`__enter__` saved; exceptions propagate."""
        m = self.model
        for mod, f in self.flags.items():
            mod.training = f
        with torch.no_grad():
            for k, b in m.named_buffers():
                if not torch.equal(b, self.buffers[k]):
                    b.copy_(self.buffers[k])
        for k, p in m.named_parameters():
            if p.grad is not self.grads[k]:
                p.grad = self.grads[k]
        return False


def _as_device(device: torch.device | str, name: str = "device") -> torch.device:
    d = resolve_device(device, argument=name)
    if d.type == "cuda" and d.index is None:
        # Tensors report an indexed device; the operator's must compare equal to theirs.
        d = torch.device("cuda", torch.cuda.current_device())
    return d


def _loss_reduction(loss_fn: Callable, loss_reduction: str | None) -> str:
    """Return the reduction of ``loss_fn`` ("mean" or "sum").

    Its own ``reduction`` attribute or keyword, checked against ``loss_reduction``; for a
    plain callable ``loss_reduction``, by default "mean".
    """
    own = getattr(loss_fn, "reduction", None)
    if own is None and isinstance(loss_fn, functools.partial):
        own = loss_fn.keywords.get("reduction")
    if own == "batchmean":  # KLDivLoss: the sum over the batch divided by its size
        own = "mean"
    if own is not None and own not in LOSS_REDUCTIONS:
        raise ValueError(f"loss_fn has reduction={own!r}; a curvature operator needs a "
                         "scalar loss: use reduction='mean' or 'sum'")
    if loss_reduction is not None and loss_reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"loss_reduction must be one of {LOSS_REDUCTIONS}, got "
                         f"{loss_reduction!r}")
    if own is not None and loss_reduction is not None and own != loss_reduction:
        raise ValueError(f"loss_reduction={loss_reduction!r} contradicts the loss's own "
                         f"reduction={own!r}")
    return own or loss_reduction or "mean"


class NetworkOperator(CurvatureOperator):
    """A curvature operator of a network, a loss and data (base of the Hessian and GGN).

    Parameters
    ----------
    model : torch.nn.Module
        The network. Its state — train/eval flags, buffers, ``.grad`` — is restored after
        every call; its parameters and buffers are copied at construction (a snapshot:
        training the model afterwards does not change the operator).
    loss_fn : callable
        ``loss_fn(output, y)`` → scalar: the mean or the sum over the batch.
    data : tuple or list or Iterable
        One batch ``(x, y)``, a list of batches, or any re-iterable loader. It must
        yield the same samples each pass (no random augmentation; with
        ``bn_mode="frozen-train"`` also the same batches, so no shuffling): a product that
        sees other data than the first complete pass raises ``ValueError``. ``x`` may be a
        mapping of tensors (see :mod:`rmtlr.curvature.batches`).
    params : iterable of str or torch.nn.Parameter, optional
        Parameters (or their names) the curvature is taken in; default all with
        ``requires_grad``. The others are held fixed.
    dtype : torch.dtype, optional
        Dtype of the flat vectors (default: the model's). The model is evaluated with
        copies of its parameters in this dtype.
    device : torch.device or str, optional
        Device of the flat vectors and of the products (default: the model's).
    bn_mode : {"eval", "frozen-train"}, optional
        ``"eval"``: BatchNorm uses running statistics. ``"frozen-train"``: BatchNorm uses
        each batch's own statistics, measured once and then held fixed, so no derivative
        flows through them. Dropout is always off.
    loss_reduction : {"mean", "sum"}, optional
        How ``loss_fn`` reduces over the batch. Read from the loss itself when it says
        (``nn.CrossEntropyLoss(reduction=...)`` and the other torch losses, or a
        ``functools.partial`` with a ``reduction`` keyword); a plain function is assumed
        to return the mean unless this says ``"sum"``.
    batch_size_fn : callable, optional
        ``batch_size_fn(x)`` → the number of samples in a batch's input; default
        ``x.shape[0]``. Required when ``x`` is a mapping.
    progress : bool, optional
        Show a tqdm bar over batches (honours ``TQDM_DISABLE``).

    Raises
    ------
    TypeError
        If ``model``, ``loss_fn`` or ``data`` have the wrong type.
    ValueError
        For an unknown ``bn_mode``, ``loss_reduction``, ``device`` or parameter name, a
        loss with ``reduction="none"``, a model with no trainable parameters or
        non-finite tensors.
    """

    #: What the products are, for messages and progress bars.
    kind = "curvature"

    def __init__(self, model: nn.Module, loss_fn: Callable[..., torch.Tensor], data: Any, *,
                 params: Iterable[str | torch.Tensor] | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 bn_mode: str = "eval", loss_reduction: str | None = None,
                 batch_size_fn: Callable[[Any], int] | None = None, progress: bool = False):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError("loss_fn must be callable as loss_fn(output, y)")
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
        if batch_size_fn is not None and not callable(batch_size_fn):
            raise TypeError("batch_size_fn must be callable as batch_size_fn(x) -> int")
        self.loss_reduction = _loss_reduction(loss_fn, loss_reduction)
        self.model, self.bn_mode, self.progress = model, bn_mode, progress
        self.batch_size_fn = batch_size_fn
        self.param_names = self._select(model, params)
        named = dict(model.named_parameters())
        ref = named[self.param_names[0]]
        self._dtype = dtype if dtype is not None else ref.dtype
        if not isinstance(self._dtype, torch.dtype) or not self._dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {self._dtype}")
        self._device = _as_device(device if device is not None else ref.device,
                                  "device" if device is not None else "the model's device")
        tensors = {}
        for k, t in [*model.named_parameters(), *model.named_buffers()]:
            # A snapshot: later training of the model does not change this operator.
            t = t.detach().to(self._device, copy=True)
            tensors[k] = t.to(self._dtype) if t.is_floating_point() else t
            if t.is_floating_point() and not all_finite(tensors[k]):
                raise ValueError(f"model tensor {k!r} contains non-finite values (NaN or Inf)")
        if bn_mode == "eval":
            for name, m in model.named_modules():
                if isinstance(m, _BN_TYPES) and m.running_mean is None:
                    raise ValueError(f"BatchNorm layer {name!r} keeps no running statistics; "
                                     "use bn_mode='frozen-train'")
        if isinstance(loss_fn, nn.Module) and any(True for _ in loss_fn.state_dict()):
            # A copy: e.g. CrossEntropyLoss(weight=...) must follow the operator's dtype and
            # device, and the caller's loss module must not change.
            loss_fn = copy.deepcopy(loss_fn).to(device=self._device, dtype=self._dtype)
        self.loss_fn = loss_fn
        self.products = BatchProducts(model, loss_fn, self.param_names, tensors)
        #: Shape of each selected parameter, in vector order (see :meth:`vector_to_params`).
        self.param_shapes = {n: tensors[n].shape for n in self.param_names}
        self._P = sum(s.numel() for s in self.param_shapes.values())
        self._has_bn = any(isinstance(m, _BN_TYPES) for m in model.modules())
        self.batches = batch_source(data)
        # An empty list is accepted so that a rank of a distributed job may hold no data; a
        # product over no samples raises (see _matvec).
        self.num_samples = (sum(count_samples(x, batch_size_fn) for x, _ in self.batches)
                            if isinstance(self.batches, list) else None)
        self._stats_cache: dict[int, dict] = {}
        self._fingerprint: torch.Tensor | None = None

    @staticmethod
    def _select(model: nn.Module, params: Iterable | None) -> list[str]:
        named = dict(model.named_parameters())
        if params is None:
            names = [k for k, p in named.items() if p.requires_grad]
        else:
            if isinstance(params, (str, torch.Tensor)):
                raise TypeError("params must be an iterable of parameter names or "
                                "parameters, not a single one")
            by_id = {id(p): k for k, p in named.items()}
            names = []
            for p in params:
                if isinstance(p, str):
                    if p not in named:
                        raise ValueError(f"params: {p!r} is not a parameter name of the model")
                    names.append(p)
                elif isinstance(p, torch.Tensor) and id(p) in by_id:
                    names.append(by_id[id(p)])
                else:
                    raise ValueError("params must be parameter names or parameters of the model")
            # A parameter named twice (or tied weights passed from two modules) is one
            # coordinate block, not two.
            names = list(dict.fromkeys(names))
        if not names:
            raise ValueError("the model has no trainable parameters to take curvature in "
                             "(params is empty or every parameter has requires_grad=False)")
        return names

    def vector_to_params(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector (e.g. an eigenvector) into per-parameter tensors.

        Parameters
        ----------
        v : torch.Tensor
            A vector of length P, or a P×k block.

        Returns
        -------
        dict of str to torch.Tensor
            Parameter name → the block of ``v`` shaped like the parameter (with a trailing
            dimension k for a block).
        """
        return vector_to_params(v, self.param_shapes)

    def _bn_stats(self, index: int, x: Any, n: int) -> dict | None:
        if self.bn_mode != "frozen-train" or not self._has_bn:
            return None
        cacheable = isinstance(self.batches, list)
        if cacheable and index in self._stats_cache:
            return self._stats_cache[index]
        stats = batch_norm_statistics(self.model, self.products.tensors, x, num_samples=n)
        if cacheable:
            self._stats_cache[index] = stats
        return stats

    def _iter_batches(self) -> Iterator[tuple[int, Any, torch.Tensor, dict | None]]:
        """Yield (n_b, x, y, bn_stats) for every non-empty batch, on the operator's device."""
        total = len(self.batches) if hasattr(self.batches, "__len__") else None
        frozen = self.bn_mode == "frozen-train" and self._has_bn
        fingerprint = None if isinstance(self.batches, list) else DataFingerprint(frozen)
        for i, batch in enumerate(progress_bar(self.batches, desc=self.kind, total=total,
                                               progress=self.progress)):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                got = (f"a {type(batch).__name__} of {len(batch)}"
                       if isinstance(batch, (tuple, list)) else type(batch).__name__)
                raise ValueError(f"each batch of data must be an (x, y) pair, got {got} "
                                 "(wrap a loader that yields more, e.g. (x, y, index), so "
                                 "that it yields (x, y))")
            x = to_device(batch[0], self._device, self._dtype)
            y = to_device(batch[1], self._device, self._dtype)
            n = count_samples(x, self.batch_size_fn)
            if n == 0:
                continue
            if fingerprint is not None:
                fingerprint.add(x, y, n)
            yield n, x, y, self._bn_stats(i, x, n)
        # Only a complete pass is compared (a consumer may stop early).
        if fingerprint is not None and (value := fingerprint.value()) is not None:
            if self._fingerprint is None:
                self._fingerprint = value
            elif not DataFingerprint.same(value, self._fingerprint):
                why = ("random augmentation (random crops or flips in the dataset's "
                       "transform), or shuffle=True with drop_last=True")
                if frozen:
                    why += ", or a shuffling loader (with bn_mode='frozen-train' each " \
                           "batch's statistics are part of the function)"
                raise ValueError(
                    "data changed between two passes over it, so the operator is not one "
                    f"fixed matrix: {why}. Pass the data without random transforms (e.g. "
                    "rmtlr.data.cifar(..., augment=False))"
                    + (" and with shuffle=False" if frozen else "")
                    + ", or a list of batches.")

    def _kernel(self, V: torch.Tensor, x: Any, y: torch.Tensor, stats: dict | None,
                whole_batch: bool) -> torch.Tensor:
        """Return the product of the batch loss as ``loss_fn`` returns it (mean or sum)."""
        raise NotImplementedError

    def _weight(self, n: int) -> float:
        """Factor turning the batch-loss product into n_b times the mean-loss product."""
        return float(n) if self.loss_reduction == "mean" else 1.0

    def check_product(self, out: torch.Tensor) -> torch.Tensor:
        """Return ``out`` if it is finite, else raise a ``ValueError`` that says why.

        Parameters
        ----------
        out : torch.Tensor
            A product of this operator.

        Returns
        -------
        torch.Tensor
            ``out`` itself.

        Raises
        ------
        ValueError
            If ``out`` has a NaN or Inf entry.
        """
        if not all_finite(out):
            raise ValueError(f"the {self.kind} product is not finite: the loss, the "
                             "parameters or the data contain NaN/Inf (or overflow in "
                             f"{self._dtype})")
        return out

    def accumulate(self, V: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Return (Σ_b n_b·A_b V, Σ_b n_b), the unnormalised sum over this operator's data.

        A_b is the curvature of batch b's mean loss; dividing by the count gives the
        operator's product. :class:`~rmtlr.curvature.DistributedOperator` reduces both
        parts over ranks.

        Parameters
        ----------
        V : torch.Tensor
            A validated vector (P,) or block (P, k).

        Returns
        -------
        tuple of (torch.Tensor, int)
            The weighted sum (zeros if there are no samples) and the sample count.
        """
        total = torch.zeros_like(V)
        n = 0
        with model_state_preserved(self.model):
            self.model.eval()
            for n_b, x, y, stats in self._iter_batches():
                total.add_(self._kernel(V, x, y, stats, True), alpha=self._weight(n_b))
                n += n_b
        return total, n

    def _mean(self, V: torch.Tensor) -> torch.Tensor:
        total, n = self.accumulate(V)
        if n == 0:
            raise ValueError("data is empty (no samples)")
        return self.check_product(total.div_(n))

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._mean(v)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self._mean(V)

    def per_batch_products(self, v: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield (n_b, A_b v) batch by batch, A_b the curvature of batch b's mean loss.

        Parameters
        ----------
        v : torch.Tensor
            A vector of the operator.

        Yields
        ------
        tuple of (int, torch.Tensor)
            Sample count and product of each non-empty batch.
        """
        self.check_vector(v)
        with model_state_preserved(self.model):
            self.model.eval()
            for n_b, x, y, stats in self._iter_batches():
                out = self._kernel(v, x, y, stats, True) * (self._weight(n_b) / n_b)
                yield n_b, self.check_product(out)

    def per_sample_products(self, v: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield (1, A_i v) sample by sample: the per-sample curvatures of Algorithm 1.

        Every tensor of a batch's input is sliced along its first dimension.

        Parameters
        ----------
        v : torch.Tensor
            A vector of the operator.

        Yields
        ------
        tuple of (int, torch.Tensor)
            1 and the product of each sample's loss.

        Raises
        ------
        ValueError
            With ``bn_mode="frozen-train"`` on a network with BatchNorm (the batch
            statistics of one sample are degenerate).
        """
        self.check_vector(v)
        if self.bn_mode == "frozen-train" and self._has_bn:
            raise ValueError("per-sample products need bn_mode='eval' (batch statistics of "
                             "one sample are degenerate)")
        with model_state_preserved(self.model):
            self.model.eval()
            for n_b, x, y, stats in self._iter_batches():
                for i in range(n_b):
                    xi, yi = sample_of(x, y, i)
                    yield 1, self.check_product(self._kernel(v, xi, yi, stats, False))

    def gradient(self) -> tuple[float, torch.Tensor]:
        """Return the mean loss and its flat gradient over ``data`` (weighted as the operator).

        Returns
        -------
        tuple of (float, torch.Tensor)
            L(w) and ∇L(w).

        Raises
        ------
        ValueError
            If the data hold no samples.
        """
        g, loss, n = None, 0.0, 0
        with model_state_preserved(self.model):
            self.model.eval()
            for n_b, x, y, stats in self._iter_batches():
                lb, gb = self.products.loss_and_grad(x, y, stats)
                w = self._weight(n_b)
                g = gb * w if g is None else g.add_(gb, alpha=w)
                loss += float(lb) * w
                n += n_b
        if n == 0:
            raise ValueError("data is empty (no samples)")
        return loss / n, g / n


class HessianOperator(NetworkOperator):
    r"""The Hessian H = ∇²L(w) of the mean loss over ``data``, as a P×P operator.

    H·v by Pearlmutter's R-operator (Pearlmutter 1994); over several batches
    H v = (1/N) Σ_b n_b H_b v (Granziol et al. 2022, Eq. 4 for one batch).

    Parameters
    ----------
    model : torch.nn.Module
        The network (see :class:`NetworkOperator`).
    loss_fn : callable
        ``loss_fn(output, y)`` → scalar mean or sum over the batch.
    data : tuple or list or Iterable
        A batch ``(x, y)``, a list of batches or a re-iterable loader.
    params : iterable of str or torch.nn.Parameter, optional
        Parameters (or names) the Hessian is taken in; default all with ``requires_grad``.
    method : {"auto", "forward-over-reverse", "double-backward"}, optional
        ``"forward-over-reverse"`` (``torch.func.jvp`` of ``torch.func.grad``),
        ``"double-backward"`` (reverse over reverse), or ``"auto"``: time both on the
        first batch and keep the faster one that runs. The choice is remembered per model
        object, and if it fails on a later batch (a layer without a forward-mode
        derivative, say) the other method takes over.
    dtype : torch.dtype, optional
        Dtype of the vectors and of the products (default: the model's).
    device : torch.device or str, optional
        Device of the vectors and of the products (default: the model's).
    bn_mode : {"eval", "frozen-train"}, optional
        BatchNorm treatment (see :class:`NetworkOperator`).
    loss_reduction : {"mean", "sum"}, optional
        The loss's reduction, for a plain function (see :class:`NetworkOperator`).
    batch_size_fn : callable, optional
        Sample count of a batch's input; default ``x.shape[0]``.
    progress : bool, optional
        Show a tqdm bar over batches.
    cache_graph : bool, optional
        For a single-batch operator with ``"double-backward"``, keep the gradient graph
        between products (each product is then one backward pass, as in PyHessian);
        costs the graph's memory for the operator's lifetime.

    Raises
    ------
    ValueError
        For an unknown ``method``, and as :class:`NetworkOperator`.

    Examples
    --------
    A linear model with the squared error: L(w) = (1/N) Σ_i (wᵀx_i)², so H = (2/N) Σ_i x_i x_iᵀ.

    >>> import torch
    >>> from torch import nn
    >>> model = nn.Linear(2, 1, bias=False).double()
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> H = HessianOperator(model, nn.MSELoss(), (x, torch.zeros(2, 1, dtype=torch.float64)))
    >>> H @ torch.tensor([1.0, 1.0], dtype=torch.float64)
    tensor([1., 4.], dtype=torch.float64)
    """

    kind = "Hessian-vector"

    def __init__(self, model: nn.Module, loss_fn: Callable[..., torch.Tensor], data: Any, *,
                 params: Iterable[str | torch.Tensor] | None = None, method: str = "auto",
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 bn_mode: str = "eval", loss_reduction: str | None = None,
                 batch_size_fn: Callable[[Any], int] | None = None, progress: bool = False,
                 cache_graph: bool = True):
        if method not in (*HVP_METHODS, "auto"):
            raise ValueError(f"method must be one of {(*HVP_METHODS, 'auto')}, got {method!r}")
        super().__init__(model, loss_fn, data, params=params, dtype=dtype, device=device,
                         bn_mode=bn_mode, loss_reduction=loss_reduction,
                         batch_size_fn=batch_size_fn, progress=progress)
        self.method = method
        self.cache_graph = cache_graph
        self._used: str | None = None

    @property
    def method_used(self) -> str | None:
        """The method of the latest product (None before the first one)."""
        return self._used

    def _auto_key(self, cache: bool) -> tuple:
        return (self._device, tuple(self.param_names), self._dtype, cache, self.bn_mode,
                type(self.loss_fn))

    def _kernel(self, V, x, y, stats, whole_batch):
        # Only a product over the operator's one whole batch may keep (or reuse) the graph:
        # a per-sample product (hessian_variance) must neither build nor read it.
        cache = (whole_batch and self.cache_graph and isinstance(self.batches, list)
                 and len(self.batches) == 1)
        if self.method != "auto":
            self._used = self.method
            return self.products.hvp(V, x, y, stats, self.method, cache=cache)
        choices = _AUTO_CHOICE.setdefault(self.model, {})
        key = self._auto_key(cache)
        if self._used is None:
            self._used = choices.get(key) or self._choose(V, x, y, stats, cache)
            choices[key] = self._used
        try:
            return self.products.hvp(V, x, y, stats, self._used, cache=cache)
        except (RuntimeError, NotImplementedError) as err:
            other = next(m for m in HVP_METHODS if m != self._used)
            try:
                out = self.products.hvp(V, x, y, stats, other, cache=cache)
            except (RuntimeError, NotImplementedError):
                raise err from None
            self._used = choices[key] = other
            return out

    def _choose(self, V: torch.Tensor, x: Any, y: torch.Tensor, stats: dict | None,
                cache: bool) -> str:
        """Time both methods on this batch and return the faster one that runs.

        A method can fail on some models and losses (torch 2.14 has no forward-mode
        derivative of ``mse_loss``'s and ``huber_loss``'s backward; a custom
        ``autograd.Function`` may lack ``jvp`` or a differentiable backward).
        """
        v = V if V.ndim == 1 else V[:, 0]
        times, errors = {}, {}
        for m in HVP_METHODS:
            best = float("inf")
            try:
                for _ in range(2):  # the first call pays one-off costs (allocator, kernels)
                    t0 = time.perf_counter()
                    out = self.products.hvp(v, x, y, stats, m, cache=cache)
                    if self._device.type == "cuda":
                        torch.cuda.synchronize(self._device)
                    float(out[0])
                    best = min(best, time.perf_counter() - t0)
            except (RuntimeError, NotImplementedError) as err:
                errors[m] = err
                continue
            times[m] = best
        if not times:
            raise errors[HVP_METHODS[-1]]
        return min(times, key=times.get)


class GGNOperator(NetworkOperator):
    r"""The generalised Gauss–Newton G = (1/N) Σ_i J_iᵀ H_ℓ,i J_i over ``data`` (P×P).

    J_i is the Jacobian of the network output for sample i in the parameters and H_ℓ,i
    the Hessian of the loss in the output (Schraudolph 2002; Granziol et al. 2022,
    Sec. 5 / Thm 7 use it as the positive semi-definite stand-in for H when ℓ is convex
    in the output). G·v = Jᵀ(H_ℓ(J v)) by a JVP, an output-space HVP and a VJP. The
    parameters (``model``, ``loss_fn``, ``data``, ``params``, ``dtype``, ``device``,
    ``bn_mode``, ``loss_reduction``, ``batch_size_fn``, ``progress``) are those of
    :class:`NetworkOperator`.
    """

    kind = "GGN-vector"

    def _kernel(self, V, x, y, stats, whole_batch):
        return self.products.ggnvp(V, x, y, stats)


def hessian_vector_product(model: nn.Module, loss_fn: Callable[..., torch.Tensor], x: Any,
                           y: torch.Tensor, v: torch.Tensor, *,
                           method: str = "forward-over-reverse", bn_mode: str = "eval"
                           ) -> torch.Tensor:
    """H·v of ``loss_fn(model(x), y)`` (mean over the batch) in all trainable parameters.

    A one-batch convenience around :class:`HessianOperator`.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    loss_fn : callable
        The loss.
    x : torch.Tensor or mapping of str to torch.Tensor
        The batch's input.
    y : torch.Tensor
        The batch's targets.
    v : torch.Tensor
        A flat vector of the model's dtype and device.
    method : str, optional
        One of ``HVP_METHODS``.
    bn_mode : str, optional
        One of ``BN_MODES``.

    Returns
    -------
    torch.Tensor
        H·v, flat.
    """
    return HessianOperator(model, loss_fn, (x, y), method=method, bn_mode=bn_mode) @ v


def ggn_vector_product(model: nn.Module, loss_fn: Callable[..., torch.Tensor], x: Any,
                       y: torch.Tensor, v: torch.Tensor, *, bn_mode: str = "eval"
                       ) -> torch.Tensor:
    """G·v = Jᵀ H_ℓ J v of ``loss_fn(model(x), y)`` (Schraudolph 2002), flat.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    loss_fn : callable
        The loss.
    x : torch.Tensor or mapping of str to torch.Tensor
        The batch's input.
    y : torch.Tensor
        The batch's targets.
    v : torch.Tensor
        A flat vector of the model's dtype and device.
    bn_mode : str, optional
        One of ``BN_MODES``.

    Returns
    -------
    torch.Tensor
        G·v, flat.
    """
    return GGNOperator(model, loss_fn, (x, y), bn_mode=bn_mode) @ v
