r"""Curvature as SGD meets it: batch sharpness, and the exact mean-square stability threshold.

- :func:`batch_sharpness` and :func:`expected_batch_sharpness`: the curvature of the
  mini-batch loss along its own gradient, gᵀH_B g/gᵀg, and its mean over batches — the
  quantity that hovers at 2/η during SGD training in the *edge of stochastic stability*
  regime (Andreyev & Beneventano 2024), where the full-batch λ₁ stays below 2/η.
- :func:`mean_square_stability_threshold`: the largest learning rate for which SGD's
  dynamics linearised at a minimum are stable in mean square, computed exactly from the
  per-sample Hessians (Mulayoff & Michaeli 2023); :func:`per_sample_hessians` forms them
  for a small network.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as spla
import torch
from numpy.typing import ArrayLike
from torch import nn
from torch.func import jacrev, vmap

from rmtlr.curvature import HessianOperator
from rmtlr.noise_scale import Batch, FlatLoss, LossFn, iter_batches
from rmtlr.progress import progress_bar
from rmtlr.rmt import without_replacement_factor
from rmtlr.rmt.validation import finite_scalar, integer, random_seed

__all__ = ["BatchSharpness", "MeanSquareStability", "batch_sharpness",
           "expected_batch_sharpness", "mean_square_stability_threshold", "per_sample_hessians"]


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
