r"""The gradient noise scale B_simple = tr(Σ)/|G|² of McCandlish et al. (2018).

For a loss L(w) = (1/N) Σ_i ℓ_i(w) with per-sample gradients g_i = ∇ℓ_i(w), the full-batch
gradient is G = (1/N) Σ_i g_i and the per-sample gradient covariance is
Σ = (1/N) Σ_i (g_i − G)(g_i − G)ᵀ. A batch of B samples drawn independently has gradient
G_B with

.. math:: \mathbb{E}\,|G_B|^2 = |G|^2 + \frac{\operatorname{tr}Σ}{B},

so the batch size at which the noise in the gradient equals the signal is the *simple
noise scale* (McCandlish et al. 2018, Sec. 2)

.. math:: B_\text{simple} = \frac{\operatorname{tr}Σ}{|G|^2}.

They show that the critical batch size — beyond which a larger batch no longer cuts the
number of steps — is of this order. :func:`gradient_noise_scale` computes it
exactly from per-sample gradients on small data, or estimates it on large data from
gradient norms at two batch sizes (their Appendix A).

:class:`FlatLoss` writes a network's loss as a function of one flat parameter vector for
``torch.func``; :mod:`rmtlr.stability` uses it for per-sample Hessians.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from rmtlr.curvature import model_state_preserved
from rmtlr.profiles import resolve_device
from rmtlr.progress import progress_bar
from rmtlr.rmt.validation import integer

__all__ = ["Batch", "FlatLoss", "GradientNoiseScale", "LossFn", "gradient_noise_scale",
           "iter_batches"]

#: One batch: inputs and targets with the samples along the first axis.
Batch = tuple[torch.Tensor, torch.Tensor]
#: A loss ``loss_fn(output, y)`` returning the mean over the batch as a 0-d tensor.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Estimators of :func:`gradient_noise_scale`.
METHODS = ("exact", "two-batch")


def _is_pair(data: object) -> bool:
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(t, torch.Tensor) for t in data))


def iter_batches(data: Batch | Iterable[Batch]) -> Iterator[Batch]:
    """Yield the ``(x, y)`` batches of ``data``: one batch, a list of batches or a loader.

    Parameters
    ----------
    data : tuple or Iterable
        One ``(x, y)`` pair of tensors with the samples along the first axis, or an
        iterable of such pairs (a list, a ``DataLoader``, a generator).

    Yields
    ------
    tuple of torch.Tensor
        Each ``(x, y)`` batch, with equal first dimensions.

    Raises
    ------
    TypeError
        If ``data`` or one of its batches is not an ``(x, y)`` pair of tensors.
    ValueError
        If ``x`` and ``y`` of a batch hold different numbers of samples.
    """
    if _is_pair(data):
        batches: Iterable = [tuple(data)]
    elif isinstance(data, Iterable) and not isinstance(data, (torch.Tensor, str)):
        batches = data
    else:
        raise TypeError("data must be an (x, y) pair of tensors, a list of such batches or a "
                        f"DataLoader, got {type(data).__name__}")
    for i, batch in enumerate(batches):
        if not _is_pair(batch):
            raise TypeError(f"data: batch {i} is not an (x, y) pair of tensors "
                            f"(got {type(batch).__name__})")
        x, y = batch
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"data: batch {i} has {x.shape[0]} inputs but {y.shape[0]} targets")
        yield x, y


class FlatLoss:
    r"""A network's loss as a function of one flat parameter vector, for ``torch.func``.

    ``flat(w, x, y) = loss_fn(f_w(x), y)``, f_w the model with its trainable parameters
    (those with ``requires_grad``, in ``named_parameters`` order, as in
    :class:`rmtlr.curvature.HessianOperator`) read from the flat vector ``w``. Buffers and
    frozen parameters are held fixed. The tensors are copied at construction, in ``dtype``
    on ``device``; evaluate inside :meth:`evaluation` so that dropout is off and BatchNorm
    uses its running statistics (and the model's own state is left as it was).

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    loss_fn : callable
        ``loss_fn(output, y)``, the *mean* loss over the batch (``reduction="mean"``).
    dtype : torch.dtype, optional
        Floating dtype of the computation (default: the model's).
    device : torch.device or str, optional
        Where to compute (default: the model's).

    Attributes
    ----------
    w : torch.Tensor
        The model's trainable parameters as one flat vector (a copy).
    P : int
        Number of trainable parameters.

    Raises
    ------
    TypeError
        If ``model`` is not a module, ``loss_fn`` is not callable, ``dtype`` is not a
        floating dtype or ``device`` not a device.
    ValueError
        If the model has no trainable parameters or holds non-finite values, or
        ``device`` is not usable here (:func:`rmtlr.profiles.resolve_device`).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError("loss_fn must be callable as loss_fn(output, y)")
        trainable = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("model has no trainable parameters (every parameter has "
                             "requires_grad=False)")
        ref = trainable[0][1]
        self.dtype = dtype if dtype is not None else ref.dtype
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch dtype, got {self.dtype}")
        self.device = resolve_device(device) if device is not None else ref.device
        self.model = model
        self.names = [k for k, _ in trainable]
        self.shapes = [p.shape for _, p in trainable]
        self.numels = [p.numel() for _, p in trainable]
        self.P = sum(self.numels)
        self.w = torch.cat([p.detach().reshape(-1) for _, p in trainable]).to(
            self.device, self.dtype, copy=True)
        if not bool(torch.isfinite(self.w).all()):
            raise ValueError("model parameters contain non-finite values (NaN or Inf)")
        names = set(self.names)
        self.constants = {}
        for k, t in [*model.named_parameters(), *model.named_buffers()]:
            if k in names:
                continue
            t = t.detach().to(self.device, copy=True)
            self.constants[k] = t.to(self.dtype) if t.is_floating_point() else t
        if isinstance(loss_fn, nn.Module) and any(True for _ in loss_fn.state_dict()):
            # e.g. CrossEntropyLoss(weight=...) must follow the computation's dtype and device.
            loss_fn = copy.deepcopy(loss_fn).to(device=self.device, dtype=self.dtype)
        self.loss_fn = loss_fn

    def params(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the parameter dict of ``functional_call`` for the flat vector ``w``.

        Parameters
        ----------
        w : torch.Tensor
            A flat vector of length :attr:`P` (the trainable parameters in order).

        Returns
        -------
        dict of str to torch.Tensor
            Every parameter and buffer of the model by name: the trainable ones as views
            into ``w``, the others the fixed copies made at construction.
        """
        out = dict(self.constants)
        for k, s, piece in zip(self.names, self.shapes, torch.split(w, self.numels)):
            out[k] = piece.view(s)
        return out

    def __call__(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return ``loss_fn(f_w(x), y)`` for the batch ``(x, y)``.

        Parameters
        ----------
        w : torch.Tensor
            The flat parameter vector.
        x : torch.Tensor
            The batch's inputs (prepared by :meth:`prepare`).
        y : torch.Tensor
            The batch's targets.

        Returns
        -------
        torch.Tensor
            The 0-d loss, differentiable in ``w``.

        Raises
        ------
        ValueError
            If ``loss_fn`` does not return a scalar tensor.
        """
        loss = self.loss_fn(functional_call(self.model, self.params(w), (x,)), y)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ValueError("loss_fn must return a scalar (the mean over the batch)")
        return loss

    def prepare(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Move a batch to the computation's device, floating tensors to its dtype.

        Parameters
        ----------
        x : torch.Tensor
            Inputs.
        y : torch.Tensor
            Targets (integer class labels keep their dtype).

        Returns
        -------
        tuple of torch.Tensor
            ``(x, y)`` ready for :meth:`__call__`.
        """
        x, y = x.to(self.device), y.to(self.device)
        if x.is_floating_point():
            x = x.to(self.dtype)
        if y.is_floating_point():
            y = y.to(self.dtype)
        return x, y

    @contextlib.contextmanager
    def evaluation(self) -> Iterator[None]:
        """Put the model in eval mode for the block; restore its flags, buffers and grads after.

        Yields
        ------
        None
            Nothing: the block runs with the model in eval mode
            (``with flat.evaluation(): ...``).
        """
        with model_state_preserved(self.model):
            self.model.eval()
            yield

    def check_mean_loss(self, group_losses: torch.Tensor, x: torch.Tensor,
                        y: torch.Tensor) -> None:
        """Raise unless the loss of the batch ``(x, y)`` is the mean of its groups' losses.

        Per-sample (or per-group) quantities are only those of the mean loss when
        ``loss_fn`` averages over samples; a sum, or class weights that normalise by the
        batch's total weight, would silently change every result. The two must agree to
        √ε of the dtype, relative.

        Parameters
        ----------
        group_losses : torch.Tensor
            The losses of equal groups (or single samples) that make up the batch.
        x : torch.Tensor
            The whole batch's inputs.
        y : torch.Tensor
            The whole batch's targets.

        Raises
        ------
        ValueError
            If the batch's loss differs from the mean of ``group_losses``.
        """
        whole = float(self(self.w, x, y))
        mean = float(group_losses.double().mean())
        tol = math.sqrt(torch.finfo(self.dtype).eps) * (abs(whole) + abs(mean)) + 1e-30
        if abs(whole - mean) > tol:
            raise ValueError(
                "loss_fn must be the mean of per-sample losses (reduction='mean', no class "
                f"weights): the loss of a batch is {whole:.6g} but the mean of its samples' "
                f"losses is {mean:.6g}")


def _group_gradients(flat: FlatLoss, x: torch.Tensor, y: torch.Tensor, group_size: int,
                    chunk_size: int, check: bool = False):
    """Yield ``(gradients, losses)`` of the consecutive groups of ``group_size`` samples.

    ``gradients`` has one row per group: ∇ of the group's mean loss (per-sample gradients
    for ``group_size=1``), computed with ``torch.func.vmap`` over about ``chunk_size``
    samples at a time; ``len(x)`` must be a multiple of ``group_size``.
    """
    n = x.shape[0]
    k = n // group_size
    xg = x.reshape(k, group_size, *x.shape[1:])
    yg = y.reshape(k, group_size, *y.shape[1:])
    fn = vmap(grad_and_value(flat), in_dims=(None, 0, 0))
    per = max(1, chunk_size // group_size)
    for s in range(0, k, per):
        xs, ys = flat.prepare(xg[s:s + per], yg[s:s + per])
        g, v = fn(flat.w, xs, ys)
        if check and g.shape[0] > 1:
            flat.check_mean_loss(v, xs.reshape(-1, *x.shape[1:]), ys.reshape(-1, *y.shape[1:]))
            check = False
        if not bool(torch.isfinite(g).all()):
            raise ValueError("a gradient is not finite: the loss, the parameters or the data "
                             "contain NaN/Inf (or overflow in this dtype)")
        yield g, v


@dataclass(frozen=True)
class GradientNoiseScale:
    r"""Result of :func:`gradient_noise_scale`.

    Attributes
    ----------
    b_simple : float
        B_simple = tr(Σ)/|G|² (McCandlish et al. 2018); ``inf`` if |G|² = 0.
    trace_sigma : float
        tr(Σ), Σ = (1/N) Σ_i (g_i − G)(g_i − G)ᵀ the per-sample gradient covariance over
        the N samples (the data set is the population).
    grad_norm2 : float
        |G|², G the mean gradient.
    method : str
        ``"exact"`` or ``"two-batch"``.
    num_samples : int
        Samples seen.
    num_batches : int
        Batches seen (for ``"two-batch"``: big batches, each one estimate).
    small_batch_size : int or None
        B_small of the two-batch estimator (None for ``"exact"``).
    big_batch_size : float or None
        Mean B_big of the two-batch estimator (None for ``"exact"``).
    N : float
        Size of the population the two-batch estimator's batches were drawn from without
        replacement (``inf``: independent draws); ``num_samples`` for ``"exact"``.
    b_simple_stderr : float or None
        Standard error of ``b_simple`` (delta method over the big batches); None for
        ``"exact"`` (no sampling error) or when fewer than two batches were seen.
    trace_sigma_stderr : float or None
        Standard error of ``trace_sigma`` over the big batches (same convention).
    grad_norm2_stderr : float or None
        Standard error of ``grad_norm2`` over the big batches (same convention).
    """

    b_simple: float
    trace_sigma: float
    grad_norm2: float
    method: str
    num_samples: int
    num_batches: int
    small_batch_size: int | None
    big_batch_size: float | None
    N: float
    b_simple_stderr: float | None
    trace_sigma_stderr: float | None
    grad_norm2_stderr: float | None


def _ratio(trace_sigma: float, grad_norm2: float) -> float:
    if grad_norm2 > 0:
        return trace_sigma / grad_norm2
    if grad_norm2 == 0 and trace_sigma == 0:
        return math.nan
    warnings.warn(f"|G|² = {grad_norm2:.3g} is not positive, so B_simple is infinite: the "
                  "gradient is below the noise (the two-batch estimate needs more batches)",
                  RuntimeWarning, stacklevel=3)
    return math.inf


def gradient_noise_scale(model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch], *,
                         method: str = "exact",
                         small_batch_size: int | None = None, N: float = math.inf,
                         chunk_size: int = 256, dtype: torch.dtype | None = None,
                         device: torch.device | str | None = None,
                         progress: bool | None = None) -> GradientNoiseScale:
    r"""Compute the simple gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. 2018).

    With per-sample gradients g_i over the N samples of ``data``, G = (1/N) Σ_i g_i and
    Σ = (1/N) Σ_i (g_i − G)(g_i − G)ᵀ, B_simple = tr(Σ)/|G|². A batch of B
    independent draws has 𝔼|G_B|² = |G|² + tr(Σ)/B; drawn without replacement from N,
    𝔼|G_B|² = |G|² + tr(Σ)·(N − B)/(B(N − 1)).

    ``method="exact"``: every per-sample gradient (``torch.func.vmap`` over samples,
    ``chunk_size`` at a time), combined in one pass in float64 with Chan et al.'s (1979)
    pairwise update, so tr(Σ) does not suffer the cancellation of mean|g_i|² − |G|².

    ``method="two-batch"`` (McCandlish et al. 2018, App. A): each batch of ``data`` (size
    B_big, a multiple of ``small_batch_size`` = B_small, at least twice it) is split into
    B_big/B_small small batches. With |G_small|² the mean squared norm of their gradients
    and |G_big|² that of the big batch's gradient, c_B = 1/B − 1/N,

    .. math:: \widehat{|G|^2} = \frac{c_{B_\text{small}}|G_\text{big}|^2
              - c_{B_\text{big}}|G_\text{small}|^2}{c_{B_\text{small}} - c_{B_\text{big}}},
              \qquad
              \widehat{\operatorname{tr}Σ} = \frac{N-1}{N}\,
              \frac{|G_\text{small}|^2 - |G_\text{big}|^2}{c_{B_\text{small}} - c_{B_\text{big}}},

    each unbiased when the batches are uniform draws without replacement from the N
    samples (``N=inf``, the paper's form: independent draws). The estimates are averaged
    over the batches and B_simple is the ratio of the averages (consistent, not
    unbiased); standard errors come from the spread over the batches.

    Parameters
    ----------
    model : torch.nn.Module
        The network; evaluated in eval mode (dropout off, BatchNorm with running
        statistics) and left in the state it was in.
    loss_fn : callable
        ``loss_fn(output, y)``, the mean loss over the batch (``reduction="mean"``).
    data : tuple or Iterable
        One ``(x, y)`` batch, a list of batches or a loader. For ``"exact"`` all samples
        together are the population; for ``"two-batch"`` each batch is one big batch.
    method : {"exact", "two-batch"}
        Estimator (see above).
    small_batch_size : int, optional
        B_small, required for ``"two-batch"``.
    N : float
        ``"two-batch"`` only: number of samples the batches were drawn from without
        replacement (e.g. a shuffled, ``drop_last`` loader over N samples); ``inf``
        (default) for independent draws.
    chunk_size : int
        Samples per vectorised gradient call (memory ∝ chunk_size·P).
    dtype : torch.dtype, optional
        Dtype of the computation (default: the model's).
    device : torch.device or str, optional
        Where to compute (default: the model's).
    progress : bool, optional
        A tqdm bar over the batches; None: on unless ``TQDM_DISABLE`` is set or pytest runs.

    Returns
    -------
    GradientNoiseScale
        ``b_simple``, ``trace_sigma``, ``grad_norm2`` and, for ``"two-batch"``, their
        standard errors.

    Raises
    ------
    ValueError
        For an unknown ``method``; for ``small_batch_size`` or ``N`` where they do not apply
        or out of range (fractional included); for a batch whose size is not a multiple of
        ``small_batch_size`` (or is less than twice it, or exceeds ``N``); for empty data;
        for a ``loss_fn`` that is not the mean of per-sample losses; for non-finite
        gradients; for an unusable ``device``.
    TypeError
        For a ``model``, ``loss_fn`` or ``data`` of the wrong type, or a count that is not
        a number.

    Examples
    --------
    Linear regression ℓ_i = (w·x_i − y_i)² at w = 1, so g_i = 2(x_i − y_i)x_i = (2, 2, 2, −2),
    G = 1, tr(Σ) = mean g_i² − G² = 3:

    >>> import torch
    >>> from torch import nn
    >>> from rmtlr.noise_scale import gradient_noise_scale
    >>> model = nn.Linear(1, 1, bias=False).double()
    >>> _ = nn.init.ones_(model.weight)
    >>> x = torch.ones(4, 1, dtype=torch.float64)
    >>> y = torch.tensor([[0.0], [0.0], [0.0], [2.0]], dtype=torch.float64)
    >>> res = gradient_noise_scale(model, nn.MSELoss(), (x, y))
    >>> res.grad_norm2, res.trace_sigma, res.b_simple
    (1.0, 3.0, 3.0)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    chunk_size = integer("chunk_size", chunk_size)
    if method == "exact":
        if small_batch_size is not None:
            raise ValueError("small_batch_size applies to method='two-batch' only")
        if N != math.inf:
            raise ValueError("N applies to method='two-batch' only (for 'exact' the data "
                             "are the population)")
    else:
        if small_batch_size is None:
            raise ValueError("method='two-batch' needs small_batch_size (B_small)")
        small_batch_size = integer("small_batch_size", small_batch_size)
        if not (isinstance(N, float) and N == math.inf):
            N = integer("N (number of samples; math.inf for independent draws)", N, lo=2)
    flat = FlatLoss(model, loss_fn, dtype=dtype, device=device)
    batches = progress_bar(iter_batches(data), desc="gradient noise scale", progress=progress)
    with flat.evaluation():
        if method == "exact":
            return _exact(flat, batches, chunk_size)
        return _two_batch(flat, batches, small_batch_size, float(N), chunk_size)


def _exact(flat: FlatLoss, batches, chunk_size: int) -> GradientNoiseScale:
    n = 0
    mean = torch.zeros(flat.P, dtype=torch.float64, device=flat.device)
    m2 = 0.0
    num_batches = 0
    check = True
    for x, y in batches:
        num_batches += 1
        for g, _ in _group_gradients(flat, x, y, 1, chunk_size, check=check):
            check = False
            g = g.to(torch.float64)
            c = g.shape[0]
            m_c = g.mean(dim=0)
            m2_c = float(((g - m_c) ** 2).sum())
            delta = m_c - mean
            total = n + c
            mean += delta * (c / total)
            m2 += m2_c + float(delta @ delta) * n * c / total
            n = total
    if n == 0:
        raise ValueError("data holds no samples")
    grad_norm2 = float(mean @ mean)
    trace_sigma = m2 / n
    return GradientNoiseScale(_ratio(trace_sigma, grad_norm2), trace_sigma, grad_norm2,
                              "exact", n, num_batches, None, None, float(n), None, None, None)


def _two_batch(flat: FlatLoss, batches, b: int, N: float, chunk_size: int) -> GradientNoiseScale:
    g2_est, s_est, sizes = [], [], []
    check = True
    for i, (x, y) in enumerate(batches):
        B = x.shape[0]
        if B % b or B < 2 * b:
            raise ValueError(f"data: batch {i} has {B} samples; for method='two-batch' each "
                             f"batch must be a multiple of small_batch_size={b}, at least "
                             f"{2 * b} (use a loader with drop_last=True)")
        if B > N:
            raise ValueError(f"data: batch {i} has {B} samples, more than N={N:g}")
        total = torch.zeros(flat.P, dtype=torch.float64, device=flat.device)
        small = 0.0
        for g, _ in _group_gradients(flat, x, y, b, chunk_size, check=check):
            check = False
            g = g.to(torch.float64)
            small += float((g * g).sum())
            total += g.sum(dim=0)
        k = B // b
        small /= k
        big_g = total / k
        big = float(big_g @ big_g)
        c_small, c_big = 1.0 / b - 1.0 / N, 1.0 / B - 1.0 / N
        g2_est.append((c_small * big - c_big * small) / (c_small - c_big))
        s_est.append((small - big) / (c_small - c_big))
        sizes.append(B)
    if not sizes:
        raise ValueError("data holds no batches")
    g2 = np.asarray(g2_est)
    s = np.asarray(s_est) * ((N - 1.0) / N if math.isfinite(N) else 1.0)
    n = len(sizes)
    grad_norm2, trace_sigma = float(g2.mean()), float(s.mean())
    b_simple = _ratio(trace_sigma, grad_norm2)
    if n >= 2:
        g2_se = float(g2.std(ddof=1) / math.sqrt(n))
        s_se = float(s.std(ddof=1) / math.sqrt(n))
        if math.isfinite(b_simple) and grad_norm2 != 0 and trace_sigma != 0:
            cov = float(np.cov(s, g2, ddof=1)[0, 1]) / n
            rel2 = (s_se / trace_sigma) ** 2 + (g2_se / grad_norm2) ** 2 \
                - 2 * cov / (trace_sigma * grad_norm2)
            b_se = abs(b_simple) * math.sqrt(max(rel2, 0.0))
        else:
            b_se = math.nan
    else:
        g2_se = s_se = b_se = None
    return GradientNoiseScale(b_simple, trace_sigma, grad_norm2, "two-batch", int(sum(sizes)),
                              n, b, float(np.mean(sizes)), N, b_se, s_se, g2_se)
