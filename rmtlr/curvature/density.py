"""Spectral densities and traces of a curvature operator.

- :func:`slq_density`: stochastic Lanczos quadrature (Golub & Meurant 2010; Ubaru, Chen
  & Saad 2017; Ghorbani, Krishnan & Xiao 2019) — the spectral density of Granziol et al.
  (2022, Sec. 4), with the bulk edge by their 1/P Ritz-weight rule.
- :func:`hutchinson_trace`: tr(A) ≈ mean zᵀAz over Rademacher z (Hutchinson 1990).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rmtlr.curvature.base import CurvatureOperator, as_operator
from rmtlr.curvature.lanczos import lanczos
from rmtlr.progress import progress_bar
from rmtlr.rmt.validation import finite_scalar, integer, positive_scalar, random_seed

__all__ = ["SLQDensity", "TraceEstimate", "hutchinson_trace", "slq_density",
           "slq_vector_seeds"]


def _check_grid(grid: object) -> np.ndarray:
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError("grid must be a non-empty 1-D array of finite values")
    return grid


def _smooth(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray,
            kernel_width: float) -> np.ndarray:
    kern = np.exp(-0.5 * ((grid[:, None] - nodes.ravel()[None, :]) / kernel_width) ** 2)
    return kern @ weights.ravel() / (nodes.shape[0] * np.sqrt(2 * np.pi) * kernel_width)


@dataclass(frozen=True, eq=False)
class SLQDensity:
    """Result of :func:`slq_density`.

    Attributes
    ----------
    nodes : numpy.ndarray
        (num_vectors, m) Ritz values, one row per start vector.
    weights : numpy.ndarray
        (num_vectors, m) Ritz weights; each row sums to 1, so the spectral measure
        estimate is (1/n_v) Σ_v Σ_k τ_vk δ(λ − θ_vk).
    grid : numpy.ndarray
        Points the density is evaluated on.
    density : numpy.ndarray
        The Gaussian-smoothed density on ``grid`` (integrates to ≈ 1).
    kernel_width : float
        The Gaussian smoothing width.
    P : int
        Operator size.
    bulk_edge : float
        Largest Ritz value of weight ≥ 1/P, averaged over start vectors; Ritz values
        beyond it are outliers (Granziol et al. 2022, Sec. 4).
    bulk_edge_lower : float
        Smallest Ritz value of weight ≥ 1/P, likewise.
    zero_mass : float
        Spectral mass within ``zero_tol``·max|θ| of 0 (rank degeneracy, Sec. 7.1).
    """

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    kernel_width: float
    P: int
    bulk_edge: float
    bulk_edge_lower: float
    zero_mass: float

    def density_on(self, grid: np.ndarray, kernel_width: float | None = None) -> np.ndarray:
        """Return the smoothed density of the same nodes and weights on another grid.

        No new Lanczos runs are needed.

        Parameters
        ----------
        grid : array_like
            1-D points.
        kernel_width : float, optional
            Gaussian width (> 0); default this result's.

        Returns
        -------
        numpy.ndarray
            The density on ``grid``.

        Raises
        ------
        TypeError
            If ``kernel_width`` is not a real number.
        ValueError
            If ``grid`` is not a non-empty 1-D array of finite values or ``kernel_width``
            is not finite and > 0.
        """
        width = (self.kernel_width if kernel_width is None
                 else positive_scalar("kernel_width", kernel_width))
        return _smooth(self.nodes, self.weights, _check_grid(grid), width)

    def moment(self, k: int) -> float:
        """Return the SLQ estimate of the k-th spectral moment tr(A^k)/P.

        mean_v Σ_j τ_vj θ_vj^k; exact for each start vector when k ≤ 2m − 1.

        Parameters
        ----------
        k : int
            The power (≥ 0).

        Returns
        -------
        float
            The moment estimate.
        """
        k = integer("k", k, lo=0)
        return float(np.mean(np.sum(self.weights * self.nodes ** k, axis=1)))

    def outliers(self) -> np.ndarray:
        """Return the Ritz values beyond their own start vector's bulk edges.

        Returns
        -------
        numpy.ndarray
            Pooled over start vectors, descending.
        """
        heavy = self.weights >= 1.0 / self.P
        upper = np.where(heavy, self.nodes, -np.inf).max(axis=1, keepdims=True)
        lower = np.where(heavy, self.nodes, np.inf).min(axis=1, keepdims=True)
        th = self.nodes[(self.nodes > upper) | (self.nodes < lower)]
        return np.sort(th)[::-1]


def slq_vector_seeds(seed: int | None, n: int) -> list[int]:
    """Return the per-vector Lanczos seeds of :func:`slq_density`.

    n words of NumPy's ``SeedSequence(seed)`` (0 when ``seed`` is None). Consecutive
    integers (seed + v) would make ``seed=0`` and ``seed=1`` share all but one vector, so
    replicate runs would not be independent; the words of a seed sequence are independent
    streams and a prefix of a longer draw.

    Parameters
    ----------
    seed : int or None
        Base seed (≥ 0).
    n : int
        Number of seeds (≥ 1).

    Returns
    -------
    list of int
        The seeds.

    Examples
    --------
    >>> slq_vector_seeds(0, 3) == slq_vector_seeds(0, 5)[:3]
    True
    """
    seed = random_seed("seed", seed, allow_none=True)
    n = integer("n", n, lo=1)
    words = np.random.SeedSequence(0 if seed is None else seed).generate_state(n)
    return [int(w) for w in words]


def slq_density(op: CurvatureOperator | torch.Tensor | np.ndarray, num_steps: int,
                num_vectors: int = 1, *, kernel_width: float | None = None,
                grid: np.ndarray | None = None, zero_tol: float = 1e-3, seed: int | None = 0,
                progress: bool | None = None) -> SLQDensity:
    r"""Spectral density by stochastic Lanczos quadrature.

    For a unit start vector q, m Lanczos steps give the m-point Gauss quadrature of the
    spectral measure μ_q = Σ_i (qᵀφ_i)² δ_{λ_i}: Σ_k τ_k f(θ_k) = qᵀ f(A) q exactly for
    polynomials f of degree ≤ 2m − 1 (Golub & Meurant 2010, Thm 6.2). With q uniform on
    the sphere, E μ_q = (1/P) Σ_i δ_{λ_i}, the spectral density; averaging n_v start
    vectors and replacing δ by a Gaussian of width s (``kernel_width``) gives

    .. math:: ρ(t) = \frac{1}{n_v}\sum_v \sum_k τ_{vk}\,
              \frac{e^{-(t-θ_{vk})^2/2s^2}}{\sqrt{2π}\,s} .

    Bulk edge (Granziol et al. 2022, Sec. 4): an isolated eigenvalue carries expected
    weight 1/P, a Ritz value standing for the bulk carries far more, so the bulk edge is
    the largest Ritz value with weight ≥ 1/P.

    Parameters
    ----------
    op : CurvatureOperator or torch.Tensor or numpy.ndarray
        The operator, or a dense symmetric matrix.
    num_steps : int
        m, Lanczos steps per start vector (1 ≤ m ≤ P).
    num_vectors : int, optional
        n_v ≥ 1 random start vectors.
    kernel_width : float, optional
        Gaussian smoothing width s (> 0); default 1% of the spread of the nodes.
    grid : array_like, optional
        Points of the density (default 1000 points spanning the nodes ± 5s).
    zero_tol : float, optional
        Relative width (≥ 0) of the "near zero" window for ``zero_mass``.
    seed : int, optional
        Seed (≥ 0) of the start vectors: vector v is Lanczos's start from the v-th entry
        of :func:`slq_vector_seeds` (seed, n_v), so different seeds give independent sets
        of vectors and a run with more vectors extends one with fewer.
    progress : bool, optional
        A tqdm bar over the vectors; None (default): on unless ``TQDM_DISABLE`` is set or
        pytest runs.

    Returns
    -------
    SLQDensity
        Nodes, weights, the density on its grid, bulk edges and zero mass.

    Raises
    ------
    TypeError
        If a count, the seed, ``kernel_width`` or ``zero_tol`` is not a number (a string,
        a bool, None).
    ValueError
        If a count or the seed is not a whole number in range (``2.5``), or
        ``kernel_width``, ``grid`` or ``zero_tol`` is out of range.

    Examples
    --------
    Half the eigenvalues at 1, half at 3: the density has two peaks of mass 1/2.

    >>> import torch
    >>> A = torch.diag(torch.tensor([1.0] * 50 + [3.0] * 50, dtype=torch.float64))
    >>> dens = slq_density(A, 10, num_vectors=20, seed=0)
    >>> round(dens.moment(1), 1)  # tr(A)/P = 2 up to the Monte Carlo error
    2.0
    """
    op = as_operator(op)
    P = op.shape[0]
    num_steps = integer("num_steps", num_steps, lo=1, hi=P)
    n_v = integer("num_vectors", num_vectors, lo=1)
    zero_tol = finite_scalar("zero_tol", zero_tol, lo=0)
    if kernel_width is not None:
        kernel_width = positive_scalar("kernel_width", kernel_width)
    if grid is not None:
        grid = _check_grid(grid)
    seeds = slq_vector_seeds(seed, n_v)
    runs = [lanczos(op, num_steps, seed=s, progress=False)
            for s in progress_bar(seeds, desc="SLQ vectors", progress=progress)]
    nodes = np.stack([r.ritz_values for r in runs])
    weights = np.stack([r.ritz_weights for r in runs])
    spread = float(nodes.max() - nodes.min())
    if kernel_width is None:
        kernel_width = (0.01 * spread if spread > 0
                        else max(abs(float(nodes.max())), 1.0) * 1e-3)
    if grid is None:
        grid = np.linspace(nodes.min() - 5 * kernel_width, nodes.max() + 5 * kernel_width,
                           1000)
    density = _smooth(nodes, weights, grid, kernel_width)
    heavy = weights >= 1.0 / P
    upper = np.where(heavy, nodes, -np.inf).max(axis=1)
    lower = np.where(heavy, nodes, np.inf).min(axis=1)
    near = np.abs(nodes) <= zero_tol * np.abs(nodes).max()
    zero_mass = float(np.mean(np.sum(np.where(near, weights, 0.0), axis=1)))
    return SLQDensity(nodes, weights, grid, density, float(kernel_width), P,
                      float(upper.mean()), float(lower.mean()), zero_mass)


@dataclass(frozen=True)
class TraceEstimate:
    """Result of :func:`hutchinson_trace`.

    Attributes
    ----------
    trace : float
        The estimate of tr(A).
    stderr : float
        Its standard error over the probe vectors.
    num_vectors : int
        How many probes.
    """

    trace: float
    stderr: float
    num_vectors: int


def hutchinson_trace(op: CurvatureOperator | torch.Tensor | np.ndarray,
                     num_vectors: int = 100, *, seed: int | None = 0,
                     progress: bool | None = None) -> TraceEstimate:
    r"""Hutchinson's estimator tr(A) ≈ (1/n) Σ_v z_vᵀ A z_v, z_v Rademacher (Hutchinson 1990).

    Unbiased, with variance 2(‖A‖_F² − Σ_i A_ii²)/n. The quadratic forms are summed in
    float64 whatever the operator's dtype.

    Parameters
    ----------
    op : CurvatureOperator or torch.Tensor or numpy.ndarray
        The operator, or a dense symmetric matrix.
    num_vectors : int, optional
        n ≥ 2 probes (two at least, for the standard error).
    seed : int, optional
        Seed (≥ 0) of the probes (drawn on the CPU).
    progress : bool, optional
        A tqdm bar over the probes; None (default): on unless ``TQDM_DISABLE`` is set or
        pytest runs.

    Returns
    -------
    TraceEstimate
        The estimate, the sample standard deviation of the n terms over √n, and n.

    Raises
    ------
    TypeError
        If ``num_vectors`` or ``seed`` is not a number.
    ValueError
        If ``num_vectors`` is not a whole number ≥ 2 or ``seed`` not one in
        [0, 2**63 − 1].

    Examples
    --------
    >>> import torch
    >>> A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> hutchinson_trace(A, 10).trace  # exact for a diagonal matrix: zᵢ² = 1
    6.0
    """
    op = as_operator(op)
    n = integer("num_vectors", num_vectors, lo=2)
    seed = random_seed("seed", seed, allow_none=True)
    P = op.shape[0]
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    vals = []
    for _ in progress_bar(range(n), desc="Hutchinson", progress=progress):
        z = (torch.randint(0, 2, (P,), generator=gen) * 2 - 1).to(op.device, op.dtype)
        vals.append(float(torch.dot(z.double(), op.matvec(z).double())))
    vals = np.asarray(vals)
    return TraceEstimate(float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(n)), n)
