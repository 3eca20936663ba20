"""The Hessian variance σ² of Algorithm 1 (Granziol et al. 2022) and Theorem 4's σ_ε.

Theorem 4 of Granziol, Zohren & Roberts (2022) predicts the top eigenvalue of a batch
Hessian from the full-data one and σ_ε, the standard deviation of an entry of the
per-sample Hessian noise H_i − H. Forming the P×P per-sample matrices is out of reach for
a network; Algorithm 1 measures the equivalent σ² from Hessian-vector products alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from rmtlr.curvature.distributed import DistributedOperator
from rmtlr.curvature.operators import NetworkOperator
from rmtlr.progress import progress_bar
from rmtlr.rmt.validation import integer, random_seed

__all__ = ["HessianVariance", "hessian_variance"]


@dataclass(frozen=True)
class HessianVariance:
    r"""Result of :func:`hessian_variance`.

    Attributes
    ----------
    sigma2 : float
        Algorithm 1's σ² = E_z[mean_u ‖A_u z‖² − ‖mean_u A_u z‖²] over unit z, u the
        units (samples or minibatches), weighted by their sizes.
    stderr : float
        Standard error of ``sigma2`` over the random vectors.
    sigma_eps : float
        The per-entry standard deviation σ_ε for :func:`rmtlr.rmt.batch_outlier`,
        σ_ε² = σ²·𝔟(b, N)/P (see :func:`hessian_variance`).
    unit_size : float
        b, samples per unit (1 for per-sample; N/#units for uneven batches).
    num_units : int
        How many units.
    num_samples : int
        N.
    P : int
        Operator size.
    num_vectors : int
        How many z.
    """

    sigma2: float
    stderr: float
    sigma_eps: float
    unit_size: float
    num_units: int
    num_samples: int
    P: int
    num_vectors: int


def hessian_variance(op: NetworkOperator | DistributedOperator, num_vectors: int = 10, *,
                     per_sample: bool = True, seed: int | None = 0,
                     vectors: torch.Tensor | None = None,
                     progress: bool | None = None) -> HessianVariance:
    r"""Hessian variance σ² (Granziol et al. 2022, Algorithm 1) and σ_ε for Theorem 4.

    For random unit vectors z (uniform on the sphere),

    .. math:: σ^2 = \mathbb{E}_z\Big[\sum_u \frac{n_u}{N}\,‖A_u z‖^2
              - \Big‖\sum_u \frac{n_u}{N} A_u z\Big‖^2\Big]
              = \mathbb{E}_z \sum_u \frac{n_u}{N} ‖(A_u - A) z‖^2 ,

    A_u the curvature of unit u (one sample if ``per_sample``, else one batch of ``op``'s
    data) and A = Σ_u (n_u/N) A_u the operator itself. Since E[zzᵀ] = I/P,
    E‖Mz‖² = ‖M‖_F²/P, so for per-sample units σ² = (1/P) Σ_jk Var_i[H_i,jk] = P·σ_ε,0²,
    σ_ε,0² the mean per-entry population variance (normalised by N). Theorem 4 is exact
    with the variance normalised by N − 1 (:func:`rmtlr.rmt.entry_variance` with
    ``ddof=1``): σ_ε² = σ_ε,0²·N/(N−1) = σ²·𝔟(1, N)/P. For a random partition into
    batches of b samples, E‖A_u − A‖_F² = Σ_jk Var^{(N−1)}_i[H_i,jk]/𝔟(b, N)
    (Granziol et al. 2022, Eq. 6), so in general

    .. math:: σ_ε^2 = σ^2\,\frac{𝔟(b, N)}{P},\qquad 𝔟(b, N) = \frac{b}{1 - b/N},

    exact in expectation for per-sample units, and for equal minibatches in expectation
    over the partition. Uneven batches use b = N/#units. Products are accumulated in
    float64 whatever the operator's dtype.

    With ``vectors`` the expectation over z is replaced by the given directions: for the
    top eigenvector v₁ of the full-data Hessian, σ² is the variance of the noise along the
    spike, Σ_u (n_u/N)‖(A_u − A)v₁‖², and σ_ε the matching per-entry scale. Under
    ``torch.distributed`` pass a :class:`~rmtlr.curvature.DistributedOperator`: each rank
    sums over its own units and the sums are all-reduced, so every rank gets the
    single-process result.

    Parameters
    ----------
    op : NetworkOperator or DistributedOperator
        A :class:`~rmtlr.curvature.HessianOperator` or
        :class:`~rmtlr.curvature.GGNOperator` (it needs per-sample structure), or one
        wrapped in a :class:`~rmtlr.curvature.DistributedOperator` (the same random z on
        every rank, drawn from ``seed``).
    num_vectors : int, optional
        How many random z (≥ 2, for the standard error); ignored when ``vectors`` is given.
    per_sample : bool, optional
        Units are single samples (each batch is split, so BatchNorm must be in
        ``"eval"`` mode) rather than the batches of ``op``'s data.
    seed : int, optional
        Seed (≥ 0) of the z (drawn on the CPU).
    vectors : torch.Tensor, optional
        Fixed directions instead of random ones: a vector of length P or a P×k block of
        non-zero columns (each normalised here). ``stderr`` is NaN for a single vector.
    progress : bool, optional
        A tqdm bar over the z; None (default): on unless ``TQDM_DISABLE`` is set or
        pytest runs.

    Returns
    -------
    HessianVariance
        σ², its standard error, σ_ε and the counts.

    Raises
    ------
    TypeError
        If ``op`` is not a network operator, a count or the seed is not a number, or
        ``vectors`` is not a tensor.
    ValueError
        If there are fewer than 2 units, ``num_vectors`` is not a whole number ≥ 2, the
        seed is out of range, ``vectors`` has the wrong shape or a zero or non-finite
        column, or per-sample units are asked for with ``bn_mode="frozen-train"``.

    Examples
    --------
    Two samples of a linear least-squares model have Hessians 2·x_i x_iᵀ:

    >>> import torch
    >>> from torch import nn
    >>> from rmtlr.curvature import HessianOperator
    >>> model = nn.Linear(2, 1, bias=False).double()
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> H = HessianOperator(model, nn.MSELoss(), (x, torch.zeros(2, 1, dtype=torch.float64)))
    >>> res = hessian_variance(H, 50, seed=0)
    >>> res.num_units, round(res.sigma2, 6)  # (H_i - H) z has norm 1 for every unit z
    (2, 1.0)
    """
    if isinstance(op, DistributedOperator):
        local, reduce = op.local, op.all_reduce
    elif isinstance(op, NetworkOperator):
        local, reduce = op, None
    else:
        raise TypeError("op must be a HessianOperator or GGNOperator (it needs per-sample "
                        "structure), or a DistributedOperator of one, got "
                        f"{type(op).__name__}")
    seed = random_seed("seed", seed, allow_none=True)
    P = op.shape[0]
    if vectors is None:
        n_z = integer("num_vectors", num_vectors, lo=2)
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        directions = (torch.randn(P, generator=gen, dtype=torch.float64) for _ in range(n_z))
    else:
        Z = _check_vectors(vectors, P)
        n_z = Z.shape[1]
        directions = (Z[:, j] for j in range(n_z))
    values = []
    n_units = n_total = 0
    for z in progress_bar(directions, desc="Hessian variance", total=n_z, progress=progress):
        z = (z / torch.linalg.vector_norm(z)).to(op.device, op.dtype)
        # In a low-precision dtype the rounded z is not exactly a unit vector; the
        # products are linear in z, so dividing by its squared norm restores one.
        z_norm2 = float(torch.dot(z.double(), z.double()))
        # [Σ_u n_u A_u z, Σ_u n_u ‖A_u z‖², #units, N] in one tensor: one all-reduce.
        sums = torch.zeros(P + 3, dtype=torch.float64, device=op.device)
        for n_u, hz in _unit_products(local, z, per_sample):
            hz = hz.double()
            sums[:P].add_(hz, alpha=float(n_u))
            sums[P] += n_u * float(torch.dot(hz, hz))
            sums[P + 1] += 1
            sums[P + 2] += n_u
        if reduce is not None:
            reduce(sums)
        n_units, n_total = int(sums[P + 1].item()), int(sums[P + 2].item())
        if n_units < 2:
            raise ValueError("hessian_variance needs at least 2 units (samples or batches), "
                             f"got {n_units}")
        mean = sums[:P] / n_total
        values.append((float(sums[P]) / n_total - float(torch.dot(mean, mean))) / z_norm2)
    values = np.asarray(values)
    sigma2 = float(values.mean())
    stderr = float(values.std(ddof=1) / np.sqrt(n_z)) if n_z > 1 else math.nan
    b = n_total / n_units
    eff = b / (1 - b / n_total)  # 𝔟(b, N), Eq. 6; b < N since there are ≥ 2 units
    sigma_eps = float(np.sqrt(max(sigma2, 0.0) * eff / P))
    return HessianVariance(sigma2, stderr, sigma_eps, float(b), n_units, n_total, P, n_z)


def _check_vectors(vectors: object, P: int) -> torch.Tensor:
    """Return ``vectors`` as a float64 CPU block P×k of finite, non-zero columns."""
    if not isinstance(vectors, torch.Tensor):
        raise TypeError(f"vectors must be a torch.Tensor of length P = {P} or a P×k block, "
                        f"got {type(vectors).__name__}")
    Z = vectors.detach().to("cpu", torch.float64)
    Z = Z[:, None] if Z.ndim == 1 else Z
    if Z.ndim != 2 or Z.shape[0] != P or Z.shape[1] < 1:
        raise ValueError(f"vectors must have length P = {P} or shape (P, k), got "
                         f"{tuple(vectors.shape)}")
    norms = torch.linalg.vector_norm(Z, dim=0)
    if not torch.isfinite(Z).all() or not (norms > 0).all():
        raise ValueError("vectors must have finite, non-zero columns")
    return Z


def _unit_products(op: NetworkOperator, z: torch.Tensor, per_sample: bool
                   ) -> Iterator[tuple[int, torch.Tensor]]:
    if per_sample:
        return op.per_sample_products(z)
    return op.per_batch_products(z)
