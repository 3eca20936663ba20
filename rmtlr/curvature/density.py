"""Spectral densities, traces and the Hessian variance σ² of a curvature operator.

- :func:`slq_density`: stochastic Lanczos quadrature (Golub & Meurant 2010; Ubaru, Chen
  & Saad 2017; Ghorbani, Krishnan & Xiao 2019) — the spectral density of Granziol et al.
  (2022, Sec. 4), with the bulk edge by their 1/P Ritz-weight rule.
- :func:`hutchinson_trace`: tr(A) ≈ mean zᵀAz over Rademacher z (Hutchinson 1990).
- :func:`hessian_variance`: σ² of Algorithm 1 of Granziol et al. (2022) from per-sample
  (or per-minibatch) Hessian-vector products, and the per-entry σ_ε² that Theorem 4
  (:func:`rmtlr.rmt.batch_outlier`) takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rmtlr.curvature.lanczos import _as_operator, lanczos
from rmtlr.progress import progress_bar
from rmtlr.rmt.batch import effective_batch_size

__all__ = ["HessianVariance", "SLQDensity", "TraceEstimate", "hessian_variance",
           "hutchinson_trace", "slq_density", "slq_vector_seeds"]


def _check_count(name: str, value, lo: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


@dataclass
class SLQDensity:
    """Result of :func:`slq_density`.

    Attributes
    ----------
    nodes, weights: (num_vectors, m) Ritz values and Ritz weights; each row of weights
        sums to 1, so the spectral measure estimate is (1/n_v) Σ_v Σ_k τ_vk δ(λ − θ_vk).
    grid, density: the Gaussian-smoothed density on a grid (integrates to ≈ 1).
    sigma: the smoothing width. P: operator size.
    bulk_edge, bulk_edge_lower: largest / smallest Ritz value of weight ≥ 1/P (averaged over
        start vectors); Ritz values beyond them are outliers (Granziol et al. 2022, Sec. 4).
    zero_mass: spectral mass within ``zero_tol``·max|θ| of 0 (rank degeneracy, Sec. 7.1).
    """

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    sigma: float
    P: int
    bulk_edge: float
    bulk_edge_lower: float
    zero_mass: float

    def density_on(self, grid, sigma: float | None = None) -> np.ndarray:
        """The Gaussian-smoothed density of the same nodes and weights on another grid
        (width ``sigma``, default this result's), without new Lanczos runs."""
        return _smooth(self.nodes, self.weights, np.asarray(grid, dtype=float),
                       self.sigma if sigma is None else sigma)

    def moment(self, k: int) -> float:
        """SLQ estimate of the k-th spectral moment tr(A^k)/P = mean_v Σ_j τ_vj θ_vj^k."""
        return float(np.mean(np.sum(self.weights * self.nodes ** int(k), axis=1)))

    def outliers(self) -> np.ndarray:
        """Ritz values beyond their own start vector's bulk edges (pooled, descending)."""
        heavy = self.weights >= 1.0 / self.P
        upper = np.where(heavy, self.nodes, -np.inf).max(axis=1, keepdims=True)
        lower = np.where(heavy, self.nodes, np.inf).min(axis=1, keepdims=True)
        th = self.nodes[(self.nodes > upper) | (self.nodes < lower)]
        return np.sort(th)[::-1]


def slq_density(op, num_iters: int, num_vectors: int = 1, *, grid=None, sigma: float | None = None,
                zero_tol: float = 1e-3, seed: int | None = 0, progress: bool | None = None
                ) -> SLQDensity:
    r"""Spectral density by stochastic Lanczos quadrature.

    For a unit start vector q, m Lanczos steps give the m-point Gauss quadrature of the
    spectral measure μ_q = Σ_i (qᵀφ_i)² δ_{λ_i}: Σ_k τ_k f(θ_k) = qᵀ f(A) q exactly for
    polynomials f of degree ≤ 2m − 1 (Golub & Meurant 2010, Thm 6.2). With q uniform on
    the sphere, E μ_q = (1/P) Σ_i δ_{λ_i}, the spectral density; averaging n_v start
    vectors and replacing δ by a Gaussian of width σ gives

    .. math:: ρ(t) = \frac{1}{n_v}\sum_v \sum_k τ_{vk}\,
              \frac{e^{-(t-θ_{vk})^2/2σ^2}}{\sqrt{2π}σ} .

    Bulk edge (Granziol et al. 2022, Sec. 4): an isolated eigenvalue carries expected
    weight 1/P, a Ritz value standing for the bulk carries far more, so the bulk edge is
    the largest Ritz value with weight ≥ 1/P.

    Parameters
    ----------
    op: the operator. num_iters: m (1 ≤ m ≤ P). num_vectors: n_v ≥ 1 random starts.
    grid: points of the density (default 1000 points spanning the nodes ± 5σ).
    sigma: smoothing width (> 0; default 1% of the spread of the nodes).
    zero_tol: relative width of the "near zero" window for ``zero_mass`` (≥ 0).
    seed: seed of the start vectors: vector v is Lanczos's start from the v-th entry of
        :func:`slq_vector_seeds` (seed, n), so different seeds give independent sets of
        vectors and a run with more vectors extends one with fewer.
    progress: a tqdm bar over the vectors; None (default): on unless ``TQDM_DISABLE`` is set
        or pytest runs.
    """
    op = _as_operator(op)
    P = op.shape[0]
    n_v = _check_count("num_vectors", num_vectors)
    if not (np.isfinite(zero_tol) and zero_tol >= 0):
        raise ValueError(f"zero_tol must be finite and >= 0, got {zero_tol!r}")
    seeds = slq_vector_seeds(seed, n_v)
    runs = [lanczos(op, num_iters, seed=s, progress=False)
            for s in progress_bar(seeds, desc="SLQ vectors", progress=progress)]
    nodes = np.stack([r.ritz_values for r in runs])
    weights = np.stack([r.ritz_weights for r in runs])
    spread = float(nodes.max() - nodes.min())
    if sigma is None:
        sigma = 0.01 * spread if spread > 0 else max(abs(float(nodes.max())), 1.0) * 1e-3
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")
    if grid is None:
        grid = np.linspace(nodes.min() - 5 * sigma, nodes.max() + 5 * sigma, 1000)
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError("grid must be a non-empty 1-D array of finite values")
    density = _smooth(nodes, weights, grid, sigma)
    heavy = weights >= 1.0 / P
    upper = np.where(heavy, nodes, -np.inf).max(axis=1)
    lower = np.where(heavy, nodes, np.inf).min(axis=1)
    near = np.abs(nodes) <= zero_tol * np.abs(nodes).max()
    zero_mass = float(np.mean(np.sum(np.where(near, weights, 0.0), axis=1)))
    return SLQDensity(nodes, weights, grid, density, float(sigma), P, float(upper.mean()),
                      float(lower.mean()), zero_mass)


def _smooth(nodes, weights, grid, sigma) -> np.ndarray:
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError("grid must be a non-empty 1-D array of finite values")
    kern = np.exp(-0.5 * ((grid[:, None] - nodes.ravel()[None, :]) / sigma) ** 2)
    return kern @ weights.ravel() / (nodes.shape[0] * np.sqrt(2 * np.pi) * sigma)


@dataclass
class TraceEstimate:
    """tr(A) estimate, its standard error over probe vectors, and the probe count."""

    trace: float
    stderr: float
    num_vectors: int


def slq_vector_seeds(seed: int | None, n: int) -> list[int]:
    """The per-vector Lanczos seeds of :func:`slq_density`: n words of NumPy's
    ``SeedSequence(seed)`` (0 when ``seed`` is None).

    Consecutive integers (seed + v) would make ``seed=0`` and ``seed=1`` share all but one
    vector, so replicate runs would not be independent; the words of a seed sequence are
    independent streams and a prefix of a longer draw.
    """
    words = np.random.SeedSequence(0 if seed is None else int(seed)).generate_state(n)
    return [int(w) for w in words]


def hutchinson_trace(op, num_vectors: int = 100, *, seed: int | None = 0,
                     progress: bool | None = None) -> TraceEstimate:
    r"""Hutchinson's estimator tr(A) ≈ (1/n) Σ_v z_vᵀ A z_v, z_v Rademacher (Hutchinson 1990).

    Unbiased, with variance 2(‖A‖_F² − Σ_i A_ii²)/n; ``stderr`` is the sample standard
    deviation of the n ≥ 2 terms over sqrt(n). ``progress``: a tqdm bar over the probes;
    None (default): on unless ``TQDM_DISABLE`` is set or pytest runs.
    """
    op = _as_operator(op)
    n = _check_count("num_vectors", num_vectors, 2)
    P = op.shape[0]
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    it = progress_bar(range(n), desc="Hutchinson", progress=progress)
    vals = []
    for _ in it:
        z = (torch.randint(0, 2, (P,), generator=gen) * 2 - 1).to(op.device, op.dtype)
        vals.append(float(torch.dot(z, op.matvec(z))))
    vals = np.asarray(vals)
    return TraceEstimate(float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(n)), n)


@dataclass
class HessianVariance:
    r"""Result of :func:`hessian_variance`.

    Attributes
    ----------
    sigma2: Algorithm 1's σ² = E_z[mean_u ‖A_u z‖² − ‖mean_u A_u z‖²] over unit z, u the
        units (samples or minibatches), weighted by their sizes.
    stderr: standard error of sigma2 over the random vectors.
    sigma_eps: the per-entry standard deviation σ_ε for :func:`rmtlr.rmt.batch_outlier`,
        σ_ε² = σ²·𝔟(b, N)/P (see :func:`hessian_variance`).
    unit_size: b, samples per unit (1 for per-sample). num_units, num_samples: counts.
    P: operator size. num_vectors: how many z.
    """

    sigma2: float
    stderr: float
    sigma_eps: float
    unit_size: float
    num_units: int
    num_samples: int
    P: int
    num_vectors: int


def hessian_variance(op, num_vectors: int = 10, *, per_sample: bool = True, seed: int | None = 0,
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
    with the variance normalised by N − 1 (:func:`rmtlr.rmt.hessian_variance` with
    ddof=1), σ_ε² = σ_ε,0²·N/(N−1) = σ²·𝔟(1, N)/P. For a random partition into batches
    of b samples, E‖(A_u − A)‖_F² = Σ_jk Var^{(N−1)}_i[H_i,jk]/𝔟(b, N) (Eq. 6), so in
    general

    .. math:: σ_ε^2 = σ^2\,\frac{𝔟(b, N)}{P},\qquad 𝔟(b, N) = \frac{b}{1 - b/N},

    exact in expectation for per-sample units, and for equal minibatches in expectation
    over the partition. Uneven batches use b = N/#units.

    Parameters
    ----------
    op: a :class:`~rmtlr.curvature.HessianOperator` or :class:`~rmtlr.curvature.GGNOperator`.
    num_vectors: how many z (≥ 2, for the standard error).
    per_sample: units are single samples (each batch is split, so BatchNorm must be in
        ``"eval"`` mode) rather than the batches of ``op``'s data.
    seed: seed of the z.
    progress: a tqdm bar over the z; None (default): on unless ``TQDM_DISABLE`` is set or
        pytest runs.
    """
    from rmtlr.curvature.operators import _NetworkOperator

    if not isinstance(op, _NetworkOperator):
        raise TypeError("op must be a HessianOperator or GGNOperator (it needs per-sample "
                        f"structure), got {type(op).__name__}")
    n_z = _check_count("num_vectors", num_vectors, 2)
    if per_sample and op.bn_mode == "frozen-train" and op._has_bn:
        raise ValueError("per_sample=True needs bn_mode='eval' (batch statistics of one "
                         "sample are degenerate)")
    P = op.shape[0]
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    values = []
    n_units = n_total = 0
    it = range(n_z)
    it = progress_bar(it, desc="Hessian variance", progress=progress)
    for _ in it:
        z = torch.randn(P, generator=gen, dtype=torch.float64)
        z = (z / torch.linalg.vector_norm(z)).to(op.device, op.dtype)
        sq = 0.0
        mean = torch.zeros_like(z)
        n_units = n_total = 0
        for n_u, hz in _unit_products(op, z, per_sample):
            sq += n_u * float(torch.dot(hz, hz))
            mean.add_(hz, alpha=float(n_u))
            n_units += 1
            n_total += n_u
        if n_units < 2:
            raise ValueError("hessian_variance needs at least 2 units (samples or batches), "
                             f"got {n_units}")
        mean /= n_total
        values.append(sq / n_total - float(torch.dot(mean, mean)))
    values = np.asarray(values)
    sigma2 = float(values.mean())
    stderr = float(values.std(ddof=1) / np.sqrt(n_z))
    b = n_total / n_units
    eff = effective_batch_size(b, n_total)
    sigma_eps = float(np.sqrt(max(sigma2, 0.0) * eff / P))
    return HessianVariance(sigma2, stderr, sigma_eps, float(b), n_units, n_total, P, n_z)


def _unit_products(op, z, per_sample: bool):
    if not per_sample:
        yield from op.per_batch_products(z)
        return
    from rmtlr.curvature.operators import _check_finite, model_state_preserved

    with model_state_preserved(op.model):
        op.model.eval()
        for _, x, y, stats in op.iter_batches():
            for i in range(x.shape[0]):
                out = op._batch_product(z, x[i:i + 1], y[i:i + 1], stats, whole_batch=False)
                _check_finite(out, op._kind)
                yield 1, out
