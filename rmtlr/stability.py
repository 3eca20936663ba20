r"""Curvature as SGD meets it: batch sharpness, and the exact mean-square stability threshold.

- :func:`batch_sharpness` and :func:`expected_batch_sharpness`: the curvature of the
  mini-batch loss along its own gradient, gᵀH_B g/gᵀg, and its mean over batches — the
  quantity that hovers at 2/η during SGD training in the *edge of stochastic stability*
  regime (Andreyev & Beneventano 2024), where the full-batch λ₁ stays below 2/η.
- :func:`mean_square_stability_threshold`: the largest learning rate for which SGD's
  dynamics linearised at a minimum are stable in mean square, computed exactly from the
  per-sample Hessians (Mulayoff & Michaeli 2023); :func:`per_sample_hessians` forms them
  for a small network, :func:`find_minimum` takes it to a strict minimum first, and
  :func:`simulate_linearised_sgd` simulates the dynamics η* is the threshold of.
- :func:`sharpness_during_training`: a constant-rate SGD run with the full-data λ₁ (the
  *edge of stability* of gradient descent, Cohen et al. 2021), the batch λ₁ (the paper's
  Eq. 24) and batch sharpness measured at checkpoints, to see which of them settles at 2/η.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as spla
import torch
from numpy.typing import ArrayLike
from torch import nn
from torch.func import jacrev, vmap

from rmtlr.curvature import HessianOperator, hessian_variance, lanczos
from rmtlr.noise_scale import Batch, FlatLoss, LossFn, gradient_noise_scale, iter_batches
from rmtlr.progress import progress_bar
from rmtlr.results import ResultsFile, dataset_fingerprint, provenance, run_key
from rmtlr.rmt import without_replacement_factor
from rmtlr.rmt.validation import finite_scalar, integer, random_seed

__all__ = ["BatchSharpness", "MeanSquareStability", "Minimum", "SharpnessTrajectory",
           "batch_sharpness", "expected_batch_sharpness", "find_minimum",
           "mean_square_stability_threshold", "per_sample_hessians",
           "sharpness_during_training", "simulate_linearised_sgd"]


# --------------------------------------------------------------------------------------
# Batch sharpness (Andreyev & Beneventano 2024)
# --------------------------------------------------------------------------------------

def _sharpness_parts(model, loss_fn, batch, *, dtype, device, bn_mode, method):
    """(gᵀH_B g, gᵀg) for the batch's mean-loss gradient g and Hessian H_B."""
    op = HessianOperator(model, loss_fn, batch, method=method, dtype=dtype, device=device,
                         bn_mode=bn_mode)
    _, g = op.gradient()
    gg = float(torch.dot(g, g))
    if gg == 0.0:
        raise ValueError("the mini-batch gradient is exactly zero, so its direction (and "
                         "gᵀH_B g / gᵀg) is undefined")
    return float(torch.dot(g, op.matvec(g))), gg


def batch_sharpness(model: nn.Module, loss_fn: LossFn, batch: Batch, *, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, bn_mode: str = "eval",
                    method: str = "auto") -> float:
    r"""Curvature of a mini-batch loss along its own gradient, gᵀH_B g / gᵀg.

    For the batch loss L_B(w) = (1/B) Σ_{i∈batch} ℓ_i(w), g = ∇L_B and H_B = ∇²L_B, this is
    the Rayleigh quotient of H_B at g (Andreyev & Beneventano 2024): the curvature the SGD
    step −ηg actually meets. The step decreases the batch loss's quadratic model only if
    η < 2gᵀg/gᵀH_B g, which is why its mean over batches (:func:`expected_batch_sharpness`)
    is what settles at 2/η. One gradient and one Hessian-vector product
    (:class:`rmtlr.curvature.HessianOperator`).

    Parameters
    ----------
    model : torch.nn.Module
        The network (its train/eval flags, buffers and ``.grad`` are left as they were).
    loss_fn : callable
        ``loss_fn(output, y)``, the mean loss over the batch.
    batch : tuple of torch.Tensor
        One ``(x, y)`` mini-batch.
    dtype : torch.dtype, optional
        Dtype of the computation (default: the model's).
    device : torch.device or str, optional
        Where to compute (default: the model's).
    bn_mode : {"eval", "frozen-train"}
        BatchNorm treatment, as in :class:`~rmtlr.curvature.HessianOperator`.
    method : {"auto", "forward-over-reverse", "double-backward"}
        Hessian-vector product method, as in :class:`~rmtlr.curvature.HessianOperator`.

    Returns
    -------
    float
        gᵀH_B g / gᵀg.

    Raises
    ------
    TypeError
        If ``batch`` is not an ``(x, y)`` pair of tensors (or ``model``/``loss_fn`` are of
        the wrong type).
    ValueError
        If the batch is empty, its gradient is exactly zero, or values are not finite.

    Examples
    --------
    For ℓ_i = (w·x_i − y_i)², H_B = (2/B) Σ x_i x_iᵀ; with one sample along e₁, g ∥ e₁ and
    gᵀH_B g / gᵀg = 2x₁² = 8:

    >>> import torch
    >>> from torch import nn
    >>> from rmtlr.stability import batch_sharpness
    >>> model = nn.Linear(2, 1, bias=False).double()
    >>> _ = nn.init.ones_(model.weight)
    >>> x = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    >>> y = torch.zeros(1, 1, dtype=torch.float64)
    >>> batch_sharpness(model, nn.MSELoss(), (x, y))
    8.0
    """
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2
            and all(isinstance(t, torch.Tensor) for t in batch)):
        raise TypeError("batch must be one (x, y) pair of tensors, got "
                        f"{type(batch).__name__} (for several batches use "
                        "expected_batch_sharpness)")
    if batch[0].shape[0] == 0:
        raise ValueError("batch is empty")
    ghg, gg = _sharpness_parts(model, loss_fn, tuple(batch), dtype=dtype, device=device,
                               bn_mode=bn_mode, method=method)
    return ghg / gg


@dataclass(frozen=True)
class BatchSharpness:
    r"""Result of :func:`expected_batch_sharpness`.

    Attributes
    ----------
    value : float
        Batch sharpness 𝔼_B[gᵀH_B g / gᵀg], the mean over batches of the per-batch ratio
        (Andreyev & Beneventano 2024).
    stderr : float or None
        Standard error of ``value`` (sample standard deviation of the ratios / √n, which
        treats the batches as independent draws); None for one batch.
    ratio_of_means : float
        𝔼_B[gᵀH_B g] / 𝔼_B[gᵀg], the other way to average, for comparison.
    ratio_of_means_stderr : float or None
        Its standard error (delta method); None for one batch.
    values : numpy.ndarray
        The per-batch ratios gᵀH_B g / gᵀg.
    num_batches : int
        Number of batches n.
    batch_size : float
        Mean number of samples per batch.
    """

    value: float
    stderr: float | None
    ratio_of_means: float
    ratio_of_means_stderr: float | None
    values: np.ndarray
    num_batches: int
    batch_size: float


def _sampled_batches(data: Batch, batch_size: int, num_batches: int, replacement: bool,
                     seed: int | None) -> Iterator[Batch]:
    x, y = data
    n = x.shape[0]
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"data has {x.shape[0]} inputs but {y.shape[0]} targets")
    if not replacement and batch_size > n:
        raise ValueError(f"batch_size must be <= the {n} samples of data when sampling "
                         f"without replacement, got {batch_size}")
    gen = torch.Generator()
    if seed is None:
        gen.seed()  # fresh entropy: different batches on every call
    else:
        gen.manual_seed(seed)
    for _ in range(num_batches):
        if replacement:
            idx = torch.randint(0, n, (batch_size,), generator=gen)
        else:
            idx = torch.randperm(n, generator=gen)[:batch_size]
        idx = idx.to(x.device)
        yield x[idx], y[idx]


def expected_batch_sharpness(model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch],
                             *, batch_size: int | None = None,
                             num_batches: int | None = None, replacement: bool = False,
                             seed: int | None = 0, dtype: torch.dtype | None = None,
                             device: torch.device | str | None = None, bn_mode: str = "eval",
                             method: str = "auto",
                             progress: bool | None = None) -> BatchSharpness:
    r"""Batch sharpness 𝔼_B[gᵀH_B g / gᵀg] over mini-batches (Andreyev & Beneventano 2024).

    Andreyev & Beneventano define Batch Sharpness as "the expected directional curvature of
    mini-batch Hessians along their corresponding stochastic gradients",

    .. math:: \text{Batch Sharpness}(w) = \mathbb{E}_{B}\left[
              \frac{∇L_B(w)^\top\, ∇^2 L_B(w)\, ∇L_B(w)}{\|∇L_B(w)\|^2}\right],

    the expectation of the per-batch ratio (:func:`batch_sharpness`) over batches drawn as
    in training; their code computes this mean of ratios by default and offers the ratio
    of means 𝔼[gᵀH_B g]/𝔼[gᵀg] as an alternative, reported here as ``ratio_of_means``.
    In the edge-of-stochastic-stability regime it settles at 2/η while the full-batch λ₁
    stays below it.

    Parameters
    ----------
    model : torch.nn.Module
        The network (left in the state it was in).
    loss_fn : callable
        ``loss_fn(output, y)``, the mean loss over the batch.
    data : tuple or Iterable
        Either an ``(x, y)`` pair of tensors holding the data set, from which
        ``num_batches`` batches of ``batch_size`` are drawn (each batch ``batch_size``
        distinct samples, as SGD without replacement sees them, unless ``replacement``);
        or a list of ``(x, y)`` batches or a loader, each batch used as given (a loader
        should use ``drop_last=True`` so that all batches have one size).
    batch_size : int, optional
        Samples per drawn batch (only with an ``(x, y)`` pair).
    num_batches : int, optional
        Number of drawn batches (only with an ``(x, y)`` pair).
    replacement : bool
        Draw each batch's samples with replacement (only with an ``(x, y)`` pair).
    seed : int, optional
        Seed of the draws (only with an ``(x, y)`` pair), in [0, 2**63 − 1]; None: fresh
        random draws on every call.
    dtype : torch.dtype, optional
        Dtype of the computation (default: the model's).
    device : torch.device or str, optional
        Where to compute (default: the model's).
    bn_mode : {"eval", "frozen-train"}
        BatchNorm treatment, as in :class:`~rmtlr.curvature.HessianOperator`.
    method : {"auto", "forward-over-reverse", "double-backward"}
        Hessian-vector product method.
    progress : bool, optional
        A tqdm bar over the batches; None: on unless ``TQDM_DISABLE`` is set or pytest runs.

    Returns
    -------
    BatchSharpness
        The mean of the ratios, its standard error, the ratio of means and the per-batch
        values.

    Raises
    ------
    ValueError
        If ``batch_size``/``num_batches`` are missing for an ``(x, y)`` pair, given for a
        list or loader, or not whole numbers in range; if ``seed`` is out of range; if
        there are no batches; if a batch gradient is exactly zero.
    TypeError
        If ``data`` or a batch is not of the accepted types, or a count or ``seed`` is
        not a number.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from rmtlr.stability import expected_batch_sharpness
    >>> model = nn.Linear(2, 1, bias=False).double()
    >>> _ = nn.init.ones_(model.weight)
    >>> batches = [(torch.tensor([[2.0, 0.0]], dtype=torch.float64), torch.zeros(1, 1)),
    ...            (torch.tensor([[0.0, 1.0]], dtype=torch.float64), torch.zeros(1, 1))]
    >>> res = expected_batch_sharpness(model, nn.MSELoss(), batches)
    >>> res.value, res.values.tolist()
    (5.0, [8.0, 2.0])
    """
    sampling = isinstance(data, (tuple, list)) and len(data) == 2 \
        and all(isinstance(t, torch.Tensor) for t in data)
    if sampling:
        if batch_size is None or num_batches is None:
            raise ValueError("data is one (x, y) pair: pass batch_size and num_batches to "
                             "draw batches from it (or pass a list of batches or a loader)")
        batch_size = integer("batch_size", batch_size)
        num_batches = integer("num_batches", num_batches)
        seed = random_seed("seed", seed, allow_none=True)
        batches = _sampled_batches(data, batch_size, num_batches, replacement, seed)
        total = num_batches
    else:
        if batch_size is not None or num_batches is not None or replacement:
            raise ValueError("batch_size, num_batches and replacement apply only when data "
                             "is one (x, y) pair to draw batches from; a list or loader is "
                             "used batch by batch as given")
        batches = iter_batches(data)
        total = len(data) if hasattr(data, "__len__") else None
    ghg, gg, sizes = [], [], []
    for x, y in progress_bar(batches, desc="batch sharpness", total=total, progress=progress):
        if x.shape[0] == 0:
            continue
        a, b = _sharpness_parts(model, loss_fn, (x, y), dtype=dtype, device=device,
                                bn_mode=bn_mode, method=method)
        ghg.append(a)
        gg.append(b)
        sizes.append(x.shape[0])
    n = len(sizes)
    if n == 0:
        raise ValueError("data holds no (non-empty) batches")
    ghg_a, gg_a = np.asarray(ghg), np.asarray(gg)
    ratios = ghg_a / gg_a
    value = float(ratios.mean())
    rom = float(ghg_a.mean() / gg_a.mean())
    if n >= 2:
        stderr = float(ratios.std(ddof=1) / math.sqrt(n))
        mx, my = ghg_a.mean(), gg_a.mean()
        c = np.cov(ghg_a, gg_a, ddof=1)
        var = (c[0, 0] / my**2 - 2 * c[0, 1] * mx / my**3 + c[1, 1] * mx**2 / my**4) / n
        rom_se = float(math.sqrt(max(var, 0.0)))
    else:
        stderr = rom_se = None
    return BatchSharpness(value, stderr, rom, rom_se, ratios, n, float(np.mean(sizes)))


# --------------------------------------------------------------------------------------
# Mean-square stability (Mulayoff & Michaeli 2023)
# --------------------------------------------------------------------------------------

def per_sample_hessians(model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch], *,
                        dtype: torch.dtype = torch.float64,
                        device: torch.device | str | None = None, chunk_size: int = 16,
                        progress: bool | None = None) -> np.ndarray:
    r"""Dense per-sample Hessians H_i = ∇²ℓ_i(w) of a small network, shape (N, P, P).

    ℓ_i = ``loss_fn(model(x_i), y_i)`` on the one-sample batch i; the mean of the H_i is
    the Hessian of the mean loss over ``data`` (:class:`rmtlr.curvature.HessianOperator`).
    Computed by reverse-over-reverse differentiation (``torch.func.jacrev`` twice,
    ``vmap``-ed over ``chunk_size`` samples), with the parameters ordered as in
    ``model.named_parameters()`` (trainable ones only). Memory: N·P² numbers, so P must be
    small (hundreds at most).

    Parameters
    ----------
    model : torch.nn.Module
        The network, evaluated in eval mode (dropout off, BatchNorm with running
        statistics) and left in the state it was in.
    loss_fn : callable
        ``loss_fn(output, y)``, the mean loss over the batch.
    data : tuple or Iterable
        One ``(x, y)`` batch, a list of batches or a loader.
    dtype : torch.dtype
        Dtype of the computation and of the result (default float64).
    device : torch.device or str, optional
        Where to compute (default: the model's).
    chunk_size : int
        Samples per vectorised call (memory ∝ chunk_size·P²).
    progress : bool, optional
        A tqdm bar over the batches; None: on unless ``TQDM_DISABLE`` is set or pytest runs.

    Returns
    -------
    numpy.ndarray
        Array of shape (N, P, P), the per-sample Hessians in sample order.

    Raises
    ------
    ValueError
        If ``data`` holds no samples, ``chunk_size`` is not a whole number ≥ 1, ``loss_fn``
        is not a mean over samples, or a Hessian is not finite.
    TypeError
        If ``model``, ``loss_fn``, ``data`` or ``chunk_size`` are of the wrong type.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from rmtlr.stability import per_sample_hessians
    >>> model = nn.Linear(2, 1, bias=False).double()
    >>> x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    >>> per_sample_hessians(model, nn.MSELoss(), (x, torch.zeros(1, 1))).tolist()
    [[[2.0, 4.0], [4.0, 8.0]]]
    """
    chunk_size = integer("chunk_size", chunk_size)
    flat = FlatLoss(model, loss_fn, dtype=dtype, device=device)
    hess = vmap(jacrev(jacrev(flat)), in_dims=(None, 0, 0))
    out = []
    check = True
    with flat.evaluation():
        for x, y in progress_bar(iter_batches(data), desc="per-sample Hessians",
                                 progress=progress):
            for s in range(0, x.shape[0], chunk_size):
                xs, ys = flat.prepare(x[s:s + chunk_size], y[s:s + chunk_size])
                if check and xs.shape[0] > 1:
                    losses = vmap(flat, in_dims=(None, 0, 0))(flat.w, xs[:, None], ys[:, None])
                    flat.check_mean_loss(losses, xs, ys)
                    check = False
                h = hess(flat.w, xs[:, None], ys[:, None]).detach()
                if not bool(torch.isfinite(h).all()):
                    raise ValueError("a per-sample Hessian is not finite: the loss, the "
                                     "parameters or the data contain NaN/Inf")
                out.append(h.cpu())
    if not out:
        raise ValueError("data holds no samples")
    return torch.cat(out).numpy()


@dataclass(frozen=True)
class MeanSquareStability:
    r"""Result of :func:`mean_square_stability_threshold`.

    Attributes
    ----------
    eta_star : float
        η* = 2/κ: linearised SGD is stable in mean square for η < η* and its second
        moment grows geometrically for η > η*.
    kappa : float
        κ = λ_max(2 A^{-1/2} 𝔼[H_B ⊗ H_B] A^{-1/2}) on symmetric matrices, A = H ⊕ H: the
        "sharpness" that plays λ₁'s role for SGD (κ = λ₁ for gradient descent).
    lam1 : float
        λ₁(H), the largest eigenvalue of the mean Hessian H = (1/N) Σ_i H_i.
    gd_threshold : float
        2/λ₁(H), gradient descent's threshold (≥ η*).
    top_direction_bound : float
        2λ₁/𝔼[(u₁ᵀH_B u₁)²] with u₁ the top eigenvector of H: a necessary condition
        η* ≤ it, from curvature along u₁ alone.
    trace_bound : float
        2 tr(H)/𝔼‖H_B‖_F² (on the range of H): a necessary condition η* ≤ it.
    p : float
        Weight of the sample-to-sample fluctuation, 𝔼[H_B⊗H_B] = H⊗H + p·D with
        D = 𝔼_i[H_i⊗H_i] − H⊗H: 1/B with replacement, (N − B)/(B(N − 1)) without.
    B : int
        Batch size.
    N : int
        Number of samples.
    P : int
        Parameters (size of each H_i).
    rank : int
        Dimension r of the range of H kept (eigenvalues above ``null_tol``·λ₁).
    null_space_leak : float
        (Σ_i ‖H_i‖_F² − ‖U_rᵀH_iU_r‖_F²)^{1/2} / (Σ_i ‖H_i‖_F²)^{1/2}: how much of the
        per-sample Hessians lies outside the range of H (0 at an interpolating minimum,
        where every H_i ⪰ 0 vanishes on H's null space), which the threshold ignores.
    replacement : bool
        Whether batches are drawn with replacement.
    method : str
        ``"dense"`` (full eigendecomposition) or ``"lanczos"`` (``scipy`` ``eigsh``).
    """

    eta_star: float
    kappa: float
    lam1: float
    gd_threshold: float
    top_direction_bound: float
    trace_bound: float
    p: float
    B: int
    N: int
    P: int
    rank: int
    null_space_leak: float
    replacement: bool
    method: str


#: Methods of :func:`mean_square_stability_threshold`.
MS_METHODS = ("auto", "dense", "lanczos")
# Largest rank r that method="auto" solves densely: it holds an r²×r² matrix (r = 48:
# 42 MB, seconds); method="dense" refuses r > 100 (800 MB).
_DENSE_AUTO_RANK = 48
_DENSE_MAX_RANK = 100


class _SecondMoment:
    """The B-independent pieces of S(p) = 2 A^{-1/2} [(1−p) H⊗H + p 𝔼_i H_i⊗H_i] A^{-1/2}.

    Everything lives in the eigenbasis of H restricted to its range (dimension r), where
    A = H ⊕ H acts on a symmetric matrix X as X_jk ↦ (λ_j + λ_k) X_jk and H⊗H as
    X_jk ↦ λ_j λ_k X_jk.
    """

    def __init__(self, hs: np.ndarray, null_tol: float):
        N, P = hs.shape[0], hs.shape[1]
        H = hs.mean(axis=0)
        lam, U = np.linalg.eigh(H)
        lam1 = float(lam[-1])
        if not lam1 > 0:
            raise ValueError("per_sample_hessians: the mean Hessian has no positive "
                             f"eigenvalue (λ₁ = {lam1:.3g}); there is no curvature to be "
                             "stable against")
        if lam[0] < -null_tol * lam1:
            raise ValueError(
                f"per_sample_hessians: the mean Hessian has eigenvalue {lam[0]:.3g} < 0, so "
                "this is not a minimum and linearised SGD diverges for every η > 0 (raise "
                f"null_tol, now {null_tol:g}, to treat |λ| <= null_tol·λ₁ as flat)")
        keep = lam > null_tol * lam1
        self.lam = lam[keep]
        self.r = int(keep.sum())
        self.N, self.P, self.lam1 = N, P, lam1
        # eigh orders eigenvalues ascending, so the range of H is the trailing block.
        full = np.einsum("pa,npq,qb->nab", U, hs, U, optimize=True)
        self.ht = np.ascontiguousarray(full[:, P - self.r:, P - self.r:])
        outside = full.copy()
        outside[:, P - self.r:, P - self.r:] = 0.0
        self.leak = math.sqrt(float((outside ** 2).sum()) / float((full ** 2).sum()))
        self.a = self.lam[:, None] + self.lam[None, :]
        self.c = np.outer(self.lam, self.lam)
        u1 = self.ht[:, -1, -1]
        self.u1_mean, self.u1_var = float(u1.mean()), float(u1.var())
        self.trace = float(self.lam.sum())
        self.fro_mean = float((self.lam ** 2).sum())
        self.fro_samples = float((self.ht ** 2).sum(axis=(1, 2)).mean())
        self._dense = None
        # In the positive cone, where the top eigenvector lies; later solves (other p)
        # start from the previous eigenvector, which moves little with p.
        self._v0 = np.eye(self.r).reshape(-1)

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """(diag of S_C, S_M) in an orthonormal basis of symmetric r×r matrices."""
        if self._dense is None:
            r = self.r
            j, k = np.triu_indices(r)
            w = np.where(j == k, 0.5, 1.0 / math.sqrt(2.0))
            flat = self.ht.reshape(self.N, r * r)
            K = flat.T @ flat / self.N  # K[(j,l),(k,m)] = 𝔼_i H_i[j,l] H_i[k,m]
            # <U_a, H_i U_b H_i> = 2 w_a w_b (H_i[j,l] H_i[k,m] + H_i[j,m] H_i[k,l]),
            # U_a = w_a (E_jk + E_kj), U_b = w_b (E_lm + E_ml).
            ja, ka = j[:, None], k[:, None]
            lb, mb = j[None, :], k[None, :]
            M = K[ja * r + lb, ka * r + mb] + K[ja * r + mb, ka * r + lb]
            M *= 2.0 * w[:, None] * w[None, :]
            scale = 1.0 / np.sqrt(self.a[j, k])
            S_M = 2.0 * scale[:, None] * M * scale[None, :]
            S_C = 2.0 * self.c[j, k] / self.a[j, k]
            self._dense = (S_C, S_M)
        return self._dense

    def kappa_dense(self, p: float) -> float:
        S_C, S_M = self.dense()
        S = p * S_M
        S[np.diag_indices_from(S)] += (1.0 - p) * S_C
        return float(np.linalg.eigvalsh(S)[-1])

    def kappa_lanczos(self, p: float) -> float:
        r = self.r
        inv_sqrt_a = 1.0 / np.sqrt(self.a)
        ht, c = self.ht, self.c

        def mv(v):
            X = v.reshape(r, r)
            X = 0.5 * (X + X.T) * inv_sqrt_a
            Y = (1.0 - p) * c * X + p * np.einsum("nab,bc,ncd->ad", ht, X, ht,
                                                  optimize=True) / self.N
            return (2.0 * inv_sqrt_a * Y).reshape(-1)

        op = spla.LinearOperator((r * r, r * r), matvec=mv, dtype=np.float64)
        val, vec = spla.eigsh(op, k=1, which="LA", v0=self._v0, tol=0)
        self._v0 = vec[:, 0]
        return float(val[0])


def _batch_sizes(B: int | Sequence[int], N: int, replacement: bool) -> list[int]:
    seq = list(B) if isinstance(B, (list, tuple, np.ndarray, range)) else [B]
    if not seq:
        raise ValueError("B (batch size) must be an integer or a non-empty sequence of them")
    out = []
    for b in seq:
        b = integer("B (batch size)", b)
        if not replacement and b > N:
            raise ValueError(f"B (batch size) must be <= N = {N} samples when sampling "
                             f"without replacement, got {b}")
        out.append(b)
    return out


def mean_square_stability_threshold(
        per_sample_hessians: ArrayLike, B: int | Sequence[int], *, replacement: bool = False,
        null_tol: float = 1e-9, method: str = "auto",
) -> MeanSquareStability | list[MeanSquareStability]:
    r"""Exact mean-square stability threshold η* of SGD at a minimum (Mulayoff & Michaeli 2023).

    Near a minimum w*, SGD with batch size B follows the linearised dynamics
    θ_{t+1} = (I − η H_{B_t}) θ_t, θ = w − w*, H_{B_t} = (1/B) Σ_{i∈B_t} H_i the Hessian of a
    random batch. The second moment Σ_t = 𝔼[θ_t θ_tᵀ] then evolves by the linear map

    .. math:: Σ_{t+1} = 𝒯_η(Σ_t) = 𝔼\,[(I - ηH_B)\,Σ_t\,(I - ηH_B)]
              = Σ_t - η(HΣ_t + Σ_t H) + η^2\,𝔼[H_B Σ_t H_B],

    and SGD is stable in mean square iff the spectral radius of 𝒯_η is below 1. Sampling
    enters only through the batch Hessian's second moment (Mulayoff & Michaeli's matrices
    C = H⊗H and D = 𝔼_i[H_i⊗H_i] − H⊗H):

    .. math:: 𝔼[H_B ⊗ H_B] = H⊗H + p\,D, \qquad
              p = \frac1B \text{ (with replacement)},\quad
              p = \frac{N - B}{B(N - 1)} \text{ (without)},

    so SGD is as stable as the mixture that takes a full-batch step with probability 1 − p
    and a single-sample step with probability p (their ALG(p)). Because 𝒯_η preserves
    positive semi-definite matrices, its spectral radius is an eigenvalue with a PSD
    eigenvector (Krein–Rutman), so it first reaches 1 where 𝒯_η X = X, i.e.
    (H⊕H) X = η 𝔼[H_B X H_B]. The threshold is therefore

    .. math:: η^* = \frac{2}{κ},\qquad
              κ = λ_\max\!\Big(2\,A^{-1/2}\,\big[(1-p)\,H⊗H + p\,𝔼_i H_i⊗H_i\big]\,
              A^{-1/2}\Big),\quad A = H⊗I + I⊗H,

    on symmetric matrices over the range of H. Mulayoff & Michaeli state the threshold in
    closed form through C and D; this expression of it is derived here in the notation
    above, and the tests check it against the spectral radius of 𝒯_η built by enumerating
    every batch, and against a simulation. For gradient descent (p = 0; B = N without
    replacement) κ = λ₁(H) and η* = 2/λ₁; κ never decreases as p grows (D is a positive
    map), so η* never decreases with B.
    Also returned, two necessary conditions from the Rayleigh quotient of κ at
    X = u₁u₁ᵀ and at the projector on the range of H:
    η* ≤ 2λ₁/𝔼[(u₁ᵀH_Bu₁)²] ≤ 2/λ₁ and η* ≤ 2 tr H/𝔼‖H_B‖_F².

    Directions in the null space of H are dropped: they are neutral when every H_i
    vanishes there, as at an interpolating minimum where all H_i ⪰ 0; ``null_space_leak``
    says how far that holds.

    Parameters
    ----------
    per_sample_hessians : array_like
        The N per-sample Hessians H_i at the minimum, shape (N, P, P), each symmetric
        (e.g. from :func:`per_sample_hessians`).
    B : int or sequence of int
        Batch size(s); ≤ N without replacement.
    replacement : bool
        Whether each batch's samples are drawn with replacement (p = 1/B) or without
        (p = (N − B)/(B(N − 1)), the usual shuffled epochs).
    null_tol : float
        Eigenvalues of H within ±``null_tol``·λ₁ count as its null space; a more negative
        eigenvalue raises (not a minimum).
    method : {"auto", "dense", "lanczos"}
        ``"dense"``: full eigendecomposition of the r(r+1)/2-dimensional matrix (memory
        r⁴ numbers); ``"lanczos"``: ``scipy.sparse.linalg.eigsh`` with matrix-free products
        (N·r³ operations each; dense for r < 3); ``"auto"``: dense for r ≤ 48. Dense
        refuses r > 100.

    Returns
    -------
    MeanSquareStability or list of MeanSquareStability
        One result, or one per batch size if ``B`` is a sequence.

    Raises
    ------
    ValueError
        If ``per_sample_hessians`` is not an (N, P, P) array of finite symmetric matrices;
        if B is not a whole number in range; if the mean Hessian has a negative eigenvalue below
        −``null_tol``·λ₁ (not a minimum) or no positive one; for an unknown ``method`` or
        a ``null_tol`` outside [0, 1).

    Examples
    --------
    One parameter, H_i ∈ {1, 3}: H = 2, 𝔼[H_B²] = 4 + p, so η* = 2H/𝔼[H_B²] = 4/(4 + p);
    with B = 1 (p = 1) that is 0.8, against 2/λ₁ = 1 for gradient descent:

    >>> from rmtlr.stability import mean_square_stability_threshold
    >>> res = mean_square_stability_threshold([[[1.0]], [[3.0]]], 1, replacement=True)
    >>> round(res.eta_star, 12), res.gd_threshold
    (0.8, 1.0)
    """
    hs = np.asarray(per_sample_hessians, dtype=np.float64)
    if hs.ndim != 3 or hs.shape[1] != hs.shape[2] or hs.shape[0] < 1 or hs.shape[1] < 1:
        raise ValueError("per_sample_hessians must have shape (N, P, P) with N, P >= 1, got "
                         f"{hs.shape}")
    if not np.isfinite(hs).all():
        raise ValueError("per_sample_hessians contains non-finite values")
    scale = float(np.abs(hs).max()) or 1.0
    if np.abs(hs - hs.transpose(0, 2, 1)).max() > 1e-8 * scale:
        raise ValueError("per_sample_hessians must be symmetric matrices")
    hs = 0.5 * (hs + hs.transpose(0, 2, 1))
    if method not in MS_METHODS:
        raise ValueError(f"method must be one of {MS_METHODS}, got {method!r}")
    null_tol = finite_scalar("null_tol", null_tol, lo=0, hi=1, hi_open=True)
    N = hs.shape[0]
    sizes = _batch_sizes(B, N, replacement)
    sm = _SecondMoment(hs, float(null_tol))
    use = method if method != "auto" else ("dense" if sm.r <= _DENSE_AUTO_RANK else "lanczos")
    if use == "dense" and sm.r > _DENSE_MAX_RANK:
        raise ValueError(f"method='dense' needs an r²×r² matrix, {8 * sm.r ** 4 / 1e9:.1f} GB "
                         f"for the rank r = {sm.r} of H (at most {_DENSE_MAX_RANK}); use "
                         "method='lanczos'")
    if sm.r < 3:  # ARPACK needs a space of dimension > 2; a 3×3 dense problem is trivial
        use = "dense"
    results = []
    for b in sizes:
        p = 1.0 / b if replacement else float(without_replacement_factor(b, N))
        kappa = sm.kappa_dense(p) if use == "dense" else sm.kappa_lanczos(p)
        lam1 = sm.lam1
        u1_second = sm.u1_mean ** 2 + p * sm.u1_var
        fro = (1.0 - p) * sm.fro_mean + p * sm.fro_samples
        results.append(MeanSquareStability(
            eta_star=2.0 / kappa, kappa=kappa, lam1=lam1, gd_threshold=2.0 / lam1,
            top_direction_bound=2.0 * lam1 / u1_second, trace_bound=2.0 * sm.trace / fro,
            p=p, B=b, N=N, P=sm.P, rank=sm.r, null_space_leak=sm.leak,
            replacement=bool(replacement), method=use))
    return results if isinstance(B, (list, tuple, np.ndarray, range)) else results[0]


# --------------------------------------------------------------------------------------
# Sharpness along an SGD run (Cohen et al. 2021; Andreyev & Beneventano 2024)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SharpnessTrajectory:
    r"""Result of :func:`sharpness_during_training`: curvature at checkpoints of one SGD run.

    Every array has one entry per checkpoint. ``b_simple`` and ``sigma_eps`` are None
    unless the run measured them (``noise_scale=True``).

    Attributes
    ----------
    lr : float
        The constant learning rate η (the stability line is 2/η).
    batch_size : int
        B.
    N : int
        Training samples.
    P : int
        Trainable parameters.
    step : numpy.ndarray
        Step of each checkpoint (0: before training).
    epoch : numpy.ndarray
        step·B/N.
    loss : numpy.ndarray
        Mean loss over the N training samples.
    lam1 : numpy.ndarray
        λ₁ of the full-data Hessian (Lanczos, started from the previous checkpoint's top
        Ritz vector).
    lam1_residual : numpy.ndarray
        ‖Hv − λ₁v‖ of that top Ritz pair (unit v): its convergence.
    lam1_batch : numpy.ndarray
        Mean over ``num_batches`` drawn batches of B samples of λ₁(H_B).
    lam1_batch_std : numpy.ndarray
        Standard deviation of λ₁(H_B) over those batches (0 for one batch).
    batch_sharpness : numpy.ndarray
        𝔼_B[gᵀH_B g/gᵀg] over ``sharpness_batches`` drawn batches
        (:func:`expected_batch_sharpness`).
    batch_sharpness_stderr : numpy.ndarray
        Its standard error.
    batch_sharpness_rom : numpy.ndarray
        The ratio of means 𝔼[gᵀH_B g]/𝔼[gᵀg].
    b_simple : numpy.ndarray or None
        McCandlish et al.'s B_simple = tr Σ/|G|², exact over the N samples
        (:func:`rmtlr.noise_scale.gradient_noise_scale`).
    sigma_eps : numpy.ndarray or None
        Theorem 4's σ_ε from Algorithm 1 (:func:`rmtlr.curvature.hessian_variance`, a
        random partition into batches of B as units).
    diverged_at : int or None
        Step at which a batch loss became non-finite or exceeded ``explode`` × the
        initial loss (the run stopped there), else None.
    wall_time_s : float
        Seconds the run took, measurements included.
    """

    lr: float
    batch_size: int
    N: int
    P: int
    step: np.ndarray
    epoch: np.ndarray
    loss: np.ndarray
    lam1: np.ndarray
    lam1_residual: np.ndarray
    lam1_batch: np.ndarray
    lam1_batch_std: np.ndarray
    batch_sharpness: np.ndarray
    batch_sharpness_stderr: np.ndarray
    batch_sharpness_rom: np.ndarray
    b_simple: np.ndarray | None
    sigma_eps: np.ndarray | None
    diverged_at: int | None
    wall_time_s: float

    _ARRAYS = ("step", "epoch", "loss", "lam1", "lam1_residual", "lam1_batch",
               "lam1_batch_std", "batch_sharpness", "batch_sharpness_stderr",
               "batch_sharpness_rom", "b_simple", "sigma_eps")

    def to_record(self) -> dict:
        """Return the trajectory as a JSON-ready dict (arrays as lists).

        Returns
        -------
        dict
            One entry per field; :meth:`from_record` inverts it.
        """
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    @classmethod
    def from_record(cls, record: dict) -> SharpnessTrajectory:
        """Rebuild a trajectory from :meth:`to_record`'s dict (or a results-file record).

        Parameters
        ----------
        record : dict
            The record; fields it has beyond the trajectory's (a results file's ``key``,
            ``versions``, …) are ignored.

        Returns
        -------
        SharpnessTrajectory
            The trajectory.

        Raises
        ------
        ValueError
            If a field is missing.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in record]
        if missing:
            raise ValueError(f"record is not a sharpness trajectory: missing {missing}")
        kw = {}
        for n in names:
            v = record[n]
            if n in cls._ARRAYS and v is not None:
                # A non-finite value is stored as null in a results file.
                v = np.asarray([np.nan if e is None else e for e in v],
                               dtype=np.int64 if n == "step" else np.float64)
            kw[n] = v
        return cls(**kw)


def _module_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a module's class, structure and tensors: the identity of its initial state."""
    h = hashlib.sha256(repr(model).encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def _top_ritz(op, num_steps: int, v0: torch.Tensor | None, seed: int):
    """(λ₁, unit vector, residual ‖Av − λ₁v‖) from ``num_steps`` Lanczos steps."""
    res = lanczos(op, min(num_steps, op.shape[0]), v0=v0, seed=seed, return_vectors=True,
                  progress=False)
    k = int(np.argmax(res.ritz_values))
    theta = float(res.ritz_values[k])
    v = res.ritz_vectors[:, k].to(op.dtype)
    v = v / torch.linalg.vector_norm(v)
    resid = float(torch.linalg.vector_norm(op.matvec(v) - theta * v))
    return theta, v, resid


def sharpness_during_training(
        model: nn.Module, loss_fn: Callable[..., torch.Tensor],
        data: tuple[torch.Tensor, torch.Tensor], *, lr: float, batch_size: int, steps: int,
        every: int, num_batches: int = 4, sharpness_batches: int = 32, num_steps: int = 20,
        noise_scale: bool = False, variance_vectors: int = 4, explode: float = 10.0,
        chunk_size: int = 512, seed: int = 0, method: str = "auto",
        device: torch.device | str | None = None, results: str | os.PathLike | None = None,
        progress: bool | None = None) -> SharpnessTrajectory:
    r"""Train with constant-rate SGD and track the curvatures that compete for 2/η.

    SGD, w ← w − η∇L_B(w), with B samples per step drawn as shuffled epochs without
    replacement (the last incomplete batch of an epoch dropped), runs for ``steps`` steps.
    At step 0 and every ``every`` steps (and at the last step) it measures, at the current
    weights:

    - λ₁(H), the top eigenvalue of the full-data Hessian: what sits at 2/η under
      full-batch gradient descent, the *edge of stability* (Cohen et al. 2021);
    - 𝔼_B λ₁(H_B), the mean over ``num_batches`` batches of B of the top eigenvalue of the
      batch Hessian: what the paper's stability condition η < 2/λ₁(H_batch) (Granziol,
      Zohren & Roberts 2022, Eq. 24) bounds;
    - Batch Sharpness 𝔼_B[gᵀH_B g/gᵀg] (:func:`expected_batch_sharpness`, over
      ``sharpness_batches`` batches): what sits at 2/η in Andreyev & Beneventano's (2024)
      *edge of stochastic stability*;
    - with ``noise_scale``: B_simple (:func:`rmtlr.noise_scale.gradient_noise_scale`,
      exact) and σ_ε (:func:`rmtlr.curvature.hessian_variance` with ``variance_vectors``
      probes and a random partition into batches of B).

    λ₁ comes from ``num_steps`` Lanczos steps started from the previous checkpoint's top
    Ritz vector (the top direction moves little between checkpoints), with its residual
    as the convergence check; batch λ₁ from ``num_steps`` steps from a random start.

    Parameters
    ----------
    model : torch.nn.Module
        The network; it is trained in place (unless the run is read from ``results``).
    loss_fn : callable
        ``loss_fn(output, y)``, the mean loss over a batch.
    data : tuple of torch.Tensor
        The ``(x, y)`` training set, in memory.
    lr : float
        η > 0.
    batch_size : int
        B, 1 ≤ B ≤ N.
    steps : int
        SGD steps, ≥ 1.
    every : int
        Steps between checkpoints, ≥ 1.
    num_batches : int
        Batches over which λ₁(H_B) is averaged, ≥ 1.
    sharpness_batches : int
        Batches over which batch sharpness is averaged, ≥ 2.
    num_steps : int
        Lanczos steps per top eigenvalue, ≥ 2.
    noise_scale : bool
        Also measure B_simple and σ_ε at every checkpoint.
    variance_vectors : int
        Random probes of Algorithm 1 for σ_ε, ≥ 2.
    explode : float
        A batch loss above ``explode`` × the initial full-data loss counts as divergence
        (> 1).
    chunk_size : int
        Samples per forward pass of the full-data products.
    seed : int
        Seeds the batch order and every random draw of the measurements.
    method : {"auto", "forward-over-reverse", "double-backward"}
        Hessian-vector product method (:class:`~rmtlr.curvature.HessianOperator`).
    device : torch.device or str, optional
        Where to compute (default: the model's device).
    results : str or os.PathLike, optional
        A results file (:mod:`rmtlr.results`): the run is stored there under a key made
        of every setting above, a fingerprint of the model's initial state and of the
        data, and read back instead of recomputed when present (then ``model`` is left
        untrained).
    progress : bool, optional
        A tqdm bar over the steps; None: on unless ``TQDM_DISABLE`` is set or pytest runs.

    Returns
    -------
    SharpnessTrajectory
        The checkpoints' measurements.

    Raises
    ------
    TypeError
        If ``data`` is not an ``(x, y)`` pair of tensors, or ``model`` is not a module.
    ValueError
        If a count, the rate, ``explode`` or ``batch_size`` is out of range, or the
        results file cannot be written.

    Examples
    --------
    Linear regression ℓ_i = (w·x_i − y_i)² with every x_i = (1, 0) has H_B = H = diag(2, 0)
    for every batch, so all three curvatures are 2 at every checkpoint:

    >>> import torch
    >>> from torch import nn
    >>> from rmtlr.stability import sharpness_during_training
    >>> model = nn.Linear(2, 1, bias=False).double()
    >>> _ = nn.init.ones_(model.weight)
    >>> x = torch.tensor([[1.0, 0.0]] * 8, dtype=torch.float64)
    >>> y = torch.tensor([[0.1], [0.7], [-0.3], [1.2], [0.45], [-0.8], [0.33], [0.9]],
    ...                  dtype=torch.float64)
    >>> run = sharpness_during_training(model, nn.MSELoss(), (x, y), lr=0.1, batch_size=4,
    ...                                steps=2, every=1, num_steps=2)
    >>> run.step.tolist(), run.lam1.round(6).tolist(), run.batch_sharpness.round(6).tolist()
    ([0, 1, 2], [2.0, 2.0, 2.0], [2.0, 2.0, 2.0])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(t, torch.Tensor) for t in data)):
        raise TypeError("data must be the (x, y) training set as a pair of tensors")
    x, y = data
    N = int(x.shape[0])
    if N != y.shape[0] or N < 1:
        raise ValueError(f"data has {x.shape[0]} inputs and {y.shape[0]} targets; need as "
                         "many of each, at least one")
    lr = finite_scalar("lr", lr, lo=0, lo_open=True)
    B = integer("batch_size", batch_size)
    if B > N:
        raise ValueError(f"batch_size must be <= N = {N} samples, got {B}")
    steps = integer("steps", steps)
    every = integer("every", every)
    num_batches = integer("num_batches", num_batches)
    sharpness_batches = integer("sharpness_batches", sharpness_batches, lo=2)
    num_steps = integer("num_steps", num_steps, lo=2)
    variance_vectors = integer("variance_vectors", variance_vectors, lo=2)
    chunk_size = integer("chunk_size", chunk_size)
    explode = finite_scalar("explode", explode, lo=1, lo_open=True)
    seed = random_seed("seed", seed)
    if not isinstance(noise_scale, (bool, np.bool_)):
        raise TypeError(f"noise_scale must be True or False, got {noise_scale!r}")
    if noise_scale and N // B < 2:
        raise ValueError(f"noise_scale=True needs at least two batches of B = {B} in the N = "
                         f"{N} samples (σ_ε is their spread), i.e. batch_size <= {N // 2}")
    settings = {"function": "sharpness_during_training", "lr": lr, "batch_size": B,
                "steps": steps, "every": every, "num_batches": num_batches,
                "sharpness_batches": sharpness_batches, "num_steps": num_steps,
                "noise_scale": bool(noise_scale), "variance_vectors": variance_vectors,
                "explode": explode, "seed": seed, "method": method,
                "model": _module_fingerprint(model), "loss_fn": repr(loss_fn)}

    def compute() -> dict:
        run = _sharpness_run(model, loss_fn, x, y, settings, chunk_size, device, progress)
        return {**run.to_record(), "settings": settings}

    if results is None:
        return SharpnessTrajectory.from_record(compute())
    store = ResultsFile(results)
    store.check_writable()
    data_key = {"x": dataset_fingerprint(torch.utils.data.TensorDataset(x, y)), "n": N}
    record = store.run_once(run_key(settings, data_key), lambda: {
        **compute(), **provenance(device if device is not None else x.device)})
    return SharpnessTrajectory.from_record(record)


def _sharpness_run(model, loss_fn, x, y, s, chunk_size, device, progress):
    """Run the loop of :func:`sharpness_during_training` (arguments checked there)."""
    t_start = time.perf_counter()
    lr, B, seed, method = s["lr"], s["batch_size"], s["seed"], s["method"]
    N = int(x.shape[0])
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    chunks = [(x[i:i + chunk_size].to(dev), y[i:i + chunk_size].to(dev))
              for i in range(0, N, chunk_size)]
    P = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    order = torch.Generator().manual_seed(seed)
    rows: dict[str, list] = {k: [] for k in SharpnessTrajectory._ARRAYS}
    v_top = None

    def measure(step: int) -> None:
        nonlocal v_top
        draw = int(np.random.SeedSequence((seed, step)).generate_state(1)[0])
        op = HessianOperator(model, loss_fn, chunks, method=method, device=dev)
        loss, _ = op.gradient()
        lam1, v_top, resid = _top_ritz(op, s["num_steps"], v_top, draw)
        gen = torch.Generator().manual_seed(draw)
        batch_lams = []
        for k in range(s["num_batches"]):
            idx = torch.randperm(N, generator=gen)[:B]
            op_b = HessianOperator(model, loss_fn, (x[idx].to(dev), y[idx].to(dev)),
                                   method=method, device=dev)
            batch_lams.append(_top_ritz(op_b, s["num_steps"], None, draw + k + 1)[0])
        sharp = expected_batch_sharpness(model, loss_fn, (x, y), batch_size=B,
                                         num_batches=s["sharpness_batches"], seed=draw,
                                         method=method, device=dev, progress=False)
        for k, v in (("step", step), ("epoch", step * B / N), ("loss", loss), ("lam1", lam1),
                     ("lam1_residual", resid), ("lam1_batch", float(np.mean(batch_lams))),
                     ("lam1_batch_std", float(np.std(batch_lams, ddof=1))
                      if len(batch_lams) > 1 else 0.0),
                     ("batch_sharpness", sharp.value),
                     ("batch_sharpness_stderr", sharp.stderr),
                     ("batch_sharpness_rom", sharp.ratio_of_means)):
            rows[k].append(v)
        if s["noise_scale"]:
            rows["b_simple"].append(gradient_noise_scale(
                model, loss_fn, chunks, chunk_size=chunk_size, device=dev,
                progress=False).b_simple)
            perm = torch.randperm(N, generator=gen)
            units = [(x[perm[i:i + B]].to(dev), y[perm[i:i + B]].to(dev))
                     for i in range(0, N - B + 1, B)]
            op_u = HessianOperator(model, loss_fn, units, method=method, device=dev)
            rows["sigma_eps"].append(hessian_variance(
                op_u, s["variance_vectors"], per_sample=False, seed=draw,
                progress=False).sigma_eps)

    measure(0)
    initial = rows["loss"][0]
    step, diverged_at = 0, None
    bar = progress_bar(total=s["steps"], desc=f"SGD η={lr:g} B={B}", progress=progress)
    model.train()
    while step < s["steps"] and diverged_at is None:
        perm = torch.randperm(N, generator=order)
        for i in range(0, N - B + 1, B):
            idx = perm[i:i + B]
            loss = loss_fn(model(x[idx].to(dev)), y[idx].to(dev))
            value = float(loss.detach())
            if not math.isfinite(value) or value > s["explode"] * initial:
                diverged_at = step
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
            if step % s["every"] == 0 or step == s["steps"]:
                measure(step)
            if step >= s["steps"]:
                break
    bar.close()
    opt.zero_grad(set_to_none=True)
    arrays = {k: (np.asarray(v, dtype=np.int64 if k == "step" else np.float64)
                  if v else None) for k, v in rows.items()}
    return SharpnessTrajectory(lr=lr, batch_size=B, N=N, P=P, diverged_at=diverged_at,
                               wall_time_s=time.perf_counter() - t_start, **arrays)


def simulate_linearised_sgd(per_sample_hessians: ArrayLike, B: int, eta: float, *,
                            steps: int, num_chains: int = 256, replacement: bool = False,
                            seed: int = 0) -> np.ndarray:
    r"""Simulate SGD linearised at a minimum; return ‖θ_t‖² for every step and chain.

    θ_{t+1} = (I − η H_{B_t}) θ_t, H_{B_t} = (1/B) Σ_{i∈B_t} H_i the Hessian of an
    independently drawn batch of B samples (distinct unless ``replacement``), for
    ``num_chains`` independent chains from standard Gaussian θ_0 (𝔼‖θ_0‖² = P): the
    dynamics whose mean-square threshold :func:`mean_square_stability_threshold` solves
    for. The mean over chains estimates 𝔼‖θ_t‖², which grows geometrically above η*;
    the median follows a typical chain, which can still shrink a little above η* because
    the mean square is carried by rare chains (so over long horizons a finite sample
    under-estimates the mean).

    Parameters
    ----------
    per_sample_hessians : array_like
        The N per-sample Hessians H_i, shape (N, P, P).
    B : int
        Batch size, 1 ≤ B (≤ N without replacement).
    eta : float
        Learning rate η > 0.
    steps : int
        Steps t, ≥ 1.
    num_chains : int
        Independent chains, ≥ 2.
    replacement : bool
        Draw each batch's samples with replacement.
    seed : int
        Seed of θ_0 and of the batches.

    Returns
    -------
    numpy.ndarray
        ‖θ_t‖², shape (``steps`` + 1, ``num_chains``).

    Raises
    ------
    ValueError
        If ``per_sample_hessians`` is not an (N, P, P) array of finite numbers, or a
        count, ``B`` or ``eta`` is out of range.

    Examples
    --------
    With one sample, H_1 = 1 and η = 0.5, every step halves θ, so ‖θ‖² falls by 4 per step:

    >>> from rmtlr.stability import simulate_linearised_sgd
    >>> sq = simulate_linearised_sgd([[[1.0]]], 1, 0.5, steps=2, num_chains=8)
    >>> sq.shape, (sq / sq[0]).mean(axis=1).round(12).tolist()
    ((3, 8), [1.0, 0.25, 0.0625])
    """
    hs = np.asarray(per_sample_hessians, dtype=np.float64)
    if hs.ndim != 3 or hs.shape[1] != hs.shape[2] or hs.shape[0] < 1 or hs.shape[1] < 1:
        raise ValueError("per_sample_hessians must have shape (N, P, P) with N, P >= 1, got "
                         f"{hs.shape}")
    if not np.isfinite(hs).all():
        raise ValueError("per_sample_hessians contains non-finite values")
    N, P = hs.shape[0], hs.shape[1]
    B = _batch_sizes(B, N, replacement)[0]
    eta = finite_scalar("eta", eta, lo=0, lo_open=True)
    steps = integer("steps", steps)
    num_chains = integer("num_chains", num_chains, lo=2)
    rng = np.random.default_rng(random_seed("seed", seed))
    theta = rng.standard_normal((num_chains, P))
    out = np.empty((steps + 1, num_chains))
    out[0] = (theta ** 2).sum(axis=1)
    full = B == N and not replacement
    for t in range(steps):
        if full:
            hb_theta = theta @ hs.mean(axis=0)
        else:
            idx = (rng.integers(0, N, (num_chains, B)) if replacement
                   else rng.random((num_chains, N)).argpartition(B - 1, axis=1)[:, :B])
            hb_theta = np.einsum("cbpq,cq->cp", hs[idx], theta) / B
        theta = theta - eta * hb_theta
        out[t + 1] = (theta ** 2).sum(axis=1)
    return out


# --------------------------------------------------------------------------------------
# A true minimum of a small network (where the mean-square analysis applies)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Minimum:
    r"""Result of :func:`find_minimum`.

    Attributes
    ----------
    loss : float
        The regularised mean loss L(w) + (λ_wd/2)‖w‖² at the point found.
    grad_norm : float
        ‖∇‖ of that loss there.
    min_eig : float
        Smallest eigenvalue of its Hessian, H + λ_wd I (> 0 at a strict minimum).
    lam1 : float
        Largest eigenvalue of that Hessian.
    newton_steps : int
        Newton steps taken after L-BFGS.
    converged : bool
        ``grad_norm`` ≤ ``tol`` and ``min_eig`` > 0: a strict local minimum to working
        precision.
    """

    loss: float
    grad_norm: float
    min_eig: float
    lam1: float
    newton_steps: int
    converged: bool


def find_minimum(model: nn.Module, loss_fn: Callable[..., torch.Tensor],
                 data: tuple[torch.Tensor, torch.Tensor], *, weight_decay: float = 0.0,
                 lbfgs_iters: int = 500, max_newton: int = 10, tol: float = 1e-10,
                 dtype: torch.dtype = torch.float64) -> Minimum:
    r"""Train a small network to a strict minimum of its (regularised) full-data loss.

    Mean-square stability (:func:`mean_square_stability_threshold`) is a property of a
    minimum: a point where the gradient vanishes and the Hessian is positive semi-definite.
    SGD only hovers near one, so this minimises

    .. math:: F(w) = \frac1N \sum_i ℓ_i(w) + \frac{λ_\text{wd}}{2}\,‖w‖^2

    with full-batch L-BFGS (strong Wolfe line search, ``lbfgs_iters`` iterations), then
    Newton steps w ← w − (∇²F)^{-1}∇F with the dense Hessian (P×P: small networks only)
    until ‖∇F‖ ≤ ``tol``. The weight decay λ_wd makes the minimum strict (it lifts the
    Hessian's null directions to λ_wd); the per-sample Hessians of F are H_i + λ_wd I.
    The loss must be twice differentiable: a ReLU network's minimum can sit on a kink,
    where Newton's method does not converge (use tanh or softplus).

    Parameters
    ----------
    model : torch.nn.Module
        The network; its trainable parameters are set to the minimum found (in their own
        dtype).
    loss_fn : callable
        ``loss_fn(output, y)``, the mean loss over a batch.
    data : tuple of torch.Tensor
        The ``(x, y)`` data set.
    weight_decay : float
        λ_wd ≥ 0.
    lbfgs_iters : int
        L-BFGS iterations, ≥ 0.
    max_newton : int
        Newton steps at most, ≥ 0.
    tol : float
        Gradient-norm tolerance, > 0.
    dtype : torch.dtype
        Floating dtype of the computation (float64 for a minimum to 1e-10).

    Returns
    -------
    Minimum
        The loss, gradient norm, Hessian extremes and whether it converged.

    Raises
    ------
    TypeError
        If ``data`` is not an ``(x, y)`` pair of tensors.
    ValueError
        If ``weight_decay``, a count or ``tol`` is out of range.

    Examples
    --------
    Ridge regression, ℓ_i = (w·x_i − y_i)², has one minimum, w* = (2XᵀX/N + λ_wd I)⁻¹ 2Xᵀy/N:

    >>> import torch
    >>> from torch import nn
    >>> from rmtlr.stability import find_minimum
    >>> model = nn.Linear(1, 1, bias=False).double()
    >>> x = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    >>> y = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    >>> res = find_minimum(model, nn.MSELoss(), (x, y), weight_decay=1.0)
    >>> round(model.weight.item(), 12), res.converged  # 3 / (5 + 1)
    (0.5, True)
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(t, torch.Tensor) for t in data)):
        raise TypeError("data must be the (x, y) data set as a pair of tensors")
    wd = finite_scalar("weight_decay", weight_decay, lo=0)
    lbfgs_iters = integer("lbfgs_iters", lbfgs_iters, lo=0)
    max_newton = integer("max_newton", max_newton, lo=0)
    tol = finite_scalar("tol", tol, lo=0, lo_open=True)
    flat = FlatLoss(model, loss_fn, dtype=dtype)
    with flat.evaluation():
        x, y = flat.prepare(*data)

        def objective(w: torch.Tensor) -> torch.Tensor:
            return flat(w, x, y) + 0.5 * wd * torch.dot(w, w)

        w = flat.w.clone().requires_grad_(True)
        if lbfgs_iters:
            opt = torch.optim.LBFGS([w], lr=1.0, max_iter=lbfgs_iters, history_size=50,
                                    tolerance_grad=tol, tolerance_change=0.0,
                                    line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                opt.zero_grad()
                value = objective(w)
                value.backward()
                return value

            opt.step(closure)
        w = w.detach()
        newton = 0
        while True:
            g = torch.func.grad(objective)(w)
            # Reverse over reverse: torch.func.hessian (forward mode) warns via torch.jit.
            H = torch.func.jacrev(torch.func.jacrev(objective))(w)
            if float(torch.linalg.vector_norm(g)) <= tol or newton == max_newton:
                break
            w = w - torch.linalg.solve(H, g)
            newton += 1
        eig = torch.linalg.eigvalsh(H)
        loss = float(objective(w))
    with torch.no_grad():
        params = flat.params(w)
        for name, p in model.named_parameters():
            if name in params:
                p.copy_(params[name].to(p.dtype))
    grad_norm = float(torch.linalg.vector_norm(g))
    min_eig = float(eig[0])
    return Minimum(loss=loss, grad_norm=grad_norm, min_eig=min_eig, lam1=float(eig[-1]),
                   newton_steps=newton, converged=bool(grad_norm <= tol and min_eig > 0))
