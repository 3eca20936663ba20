r"""The vector Dyson equation: spectra and spikes of matrices with a variance profile.

The paper's noise is "field-dependent" (Sec. 3): the entries of ε are independent but each
has its own variance. A symmetric matrix with independent centred entries of variance
E X_ij² = S_ij/n (a Wigner-type matrix with variance profile S) has a limiting density that
solves the vector Dyson, or quadratic vector, equation (Ajanki, Erdős & Krüger 2017, Eq.
1.3; Girko's canonical equations)

    −1/m_i(z) = z + Σ_j s_ij m_j(z),   Im m_i > 0 on C⁺,   s_ij = S_ij/n,

with density ρ(x) = (1/(πn)) Σ_i Im m_i(x + i0). When every row of S has the same mean σ²
(generalised Wigner; Erdős, Yau & Yin 2012, the paper's Thm 3 (ii)) this is the semicircle
of variance σ²; otherwise the density and its edge depend on the whole profile, and a
rank-one spike θvvᵀ on top of it has an outlier that depends on where v lives
(:func:`profile_outlier`).

Conventions: the public functions return the Stieltjes transform in the G convention of
:mod:`rmtlr.rmt.laws`, G(z) = ∫ρ(x)/(z − x) dx ~ 1/z; the solver works internally with
m = −G, the convention of the Dyson-equation literature. A profile is either an n×n array
(s_ij = S_ij/n) or a K×K block array with block ``fractions`` α_k (s = S_kl/n between
blocks k and l, so Σ_j s_ij m_j = Σ_l α_l S_kl m_l). In the paper's notation the profile
of ε is S_jk = (P/𝔟)σ_jk² with n = P.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq

from rmtlr.rmt.validation import finite, integer, positive_scalar, real, scalar_or_array

__all__ = [
    "ProfileOutlier",
    "dyson_density",
    "dyson_edge",
    "dyson_stieltjes",
    "mean_variance",
    "profile_outlier",
]

# Rank-truncation tolerance for large profiles: relative errors of 1e-12 in S·m are far
# below the 1e-6 accuracy the densities are checked to.
_RANK_RTOL = 1e-12
# Profiles with at most this many rows are iterated directly (O(K²) per step).
_DIRECT_MAX = 64
# Newton needs the r²×K products C_kn B_nl; above this size (a profile that is not
# numerically low-rank) only the averaged O(K²) iteration is used.
_NEWTON_MAX_WORK = 10_000_000


def _check_profile(S: ArrayLike, fractions: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a profile: S K×K symmetric non-negative, w the K weights (α_k, or 1/n)."""
    S = real("S (variance profile)", S)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] == 0:
        raise ValueError(
            f"S (variance profile) must be a non-empty square array, got shape {S.shape}"
        )
    if not np.all(np.isfinite(S)) or np.any(S < 0):
        raise ValueError("S (variance profile) must be finite with entries >= 0")
    scale = max(1.0, float(S.max()))
    if not np.allclose(S, S.T, rtol=1e-10, atol=1e-12 * scale):
        raise ValueError("S (variance profile) must be symmetric, S_ij = S_ji")
    K = S.shape[0]
    if fractions is None:
        w = np.full(K, 1.0 / K)
    else:
        w = real("fractions", fractions).ravel()
        if w.size != K:
            raise ValueError(f"fractions must have one entry per block (K={K}), got {w.size}")
        if not np.all(np.isfinite(w)) or np.any(w <= 0) or not np.isclose(w.sum(), 1.0, atol=1e-9):
            raise ValueError(f"fractions must be positive and sum to 1, got {fractions!r}")
    if not np.any(S @ w > 0):
        raise ValueError("S (variance profile) must not be identically zero")
    return S, w


# --- the vector Dyson operator -----------------------------------------------------------------


def _rmul(A: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Multiply a real matrix by a complex one through the interleaved (re, im) real view.

    This avoids promoting A to complex (half the flops of a complex product).
    """
    re = np.ascontiguousarray(X, dtype=complex).view(np.float64)
    return np.ascontiguousarray(A @ re).view(np.complex128)


class _Operator:
    """m ↦ Σ_j s_ij m_j as B (C m), with B K×r and C r×K.

    Small profiles use B = S, C = diag(w). Larger ones are compressed by a seeded randomized
    range finder (Halko, Martinsson & Tropp 2011, Alg. 4.2 with doubling) applied to the
    symmetric W^½ S W^½ = Q Λ Qᵀ, so that S W = (W^{-½} Q Λ)(Qᵀ W^½); a smooth or block
    profile then costs O(K r) instead of O(K²) per step. Full-rank profiles keep B = S.
    """

    def __init__(self, S: np.ndarray, w: np.ndarray):
        self.w = w
        self.row_sums = S @ w
        K = S.shape[0]
        self.B, self.C = S, np.diag(w)
        self._pairs = None
        if K > _DIRECT_MAX:
            low = self._low_rank(S, w)
            if low is not None:
                self.B, self.C = low

    @staticmethod
    def _low_rank(S, w):
        K = S.shape[0]
        sw = np.sqrt(w)
        A = sw[:, None] * S * sw[None, :]
        rng = np.random.default_rng(0)
        probes = rng.standard_normal((K, 10))
        A_probes = A @ probes
        k = 32
        while 2 * k <= K:
            Q, _ = np.linalg.qr(A @ rng.standard_normal((K, k)))
            lam, U = np.linalg.eigh(Q.T @ A @ Q)
            norm = np.abs(lam).max()
            # Probe estimate of ‖(I − QQᵀ)A‖ (HMT Lemma 4.1; fails with probability 1e-10).
            resid = A_probes - Q @ (Q.T @ A_probes)
            if np.sqrt((resid**2).sum(0)).max() <= _RANK_RTOL * norm:
                keep = np.abs(lam) > _RANK_RTOL * norm
                Qr = Q @ U[:, keep]
                return (Qr * lam[keep]) / sw[:, None], Qr.T * sw[None, :]
            k *= 2
        return None

    def apply(self, m: np.ndarray) -> np.ndarray:
        return _rmul(self.B, _rmul(self.C, m))

    def jacobian_products(self, m2: np.ndarray) -> np.ndarray:
        """Σ_n C_kn m2_n B_nl for each column of m2, as an (r², G) array (one real GEMM)."""
        if self._pairs is None:
            self._pairs = (self.C[:, None, :] * self.B.T[None, :, :]).reshape(-1, self.C.shape[1])
        re = np.ascontiguousarray(m2).view(np.float64)
        return np.ascontiguousarray(self._pairs @ re).view(np.complex128)

    @property
    def rank(self) -> int:
        return self.B.shape[1]

    @property
    def newton(self) -> bool:
        return self.rank**2 * self.B.shape[0] <= _NEWTON_MAX_WORK


def _admissible(m: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Columns on the right branch: Im m > 0 on C⁺; real m of sign −sign z on the real axis."""
    up = z.imag > 0
    ok_up = np.all(m.imag > 0, axis=0)
    ok_real = np.all(m.real * np.sign(z.real) < 0, axis=0) & np.all(
        np.abs(m.imag) <= 1e-300, axis=0
    )
    return np.where(up, ok_up, ok_real)


def _residual(op: _Operator, m: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.abs(m + 1.0 / (z + op.apply(m))).max(0) / np.abs(m).max(0)


# The solver works on τ = C m (r numbers per point instead of K): m = φ(τ) = −1/(z + Bτ)
# and the equation is τ = C φ(τ).


def _phi(op: _Operator, tau: np.ndarray, z: np.ndarray) -> np.ndarray:
    return -1.0 / (z + _rmul(op.B, tau))


def _tau_residual(op: _Operator, tau: np.ndarray, z: np.ndarray):
    m = _phi(op, tau, z)
    res = np.abs(tau - _rmul(op.C, m)).max(0) / np.maximum(np.abs(tau).max(0), 1e-300)
    return m, res


def _average(op: _Operator, tau: np.ndarray, z: np.ndarray, steps: int) -> np.ndarray:
    """Apply the averaged map τ ← ½τ + ½Cφ(τ) (Helton, Rashidi Far & Speicher 2007)."""
    for _ in range(steps):
        tau = 0.5 * tau + 0.5 * _rmul(op.C, _phi(op, tau, z))
    return tau


def _newton(op: _Operator, tau: np.ndarray, z: np.ndarray, tol: float, steps: int) -> np.ndarray:
    """Newton's method on F(τ) = τ − Cφ(τ), with Jacobian J = I − C diag(φ²) B.

    Steps are halved until the residual falls and φ(τ) stays on the admissible branch;
    points where no step helps are left as they are for the caller's fallback.
    """
    if not op.newton:
        m = _newton_dense(op, _phi(op, tau, z), z, tol, steps)
        return _rmul(op.C, m)
    r = op.rank
    m, res = _tau_residual(op, tau, z)
    stalled = np.zeros(z.size, bool)
    for _ in range(steps):
        act = np.flatnonzero((res > tol) & ~stalled)
        if act.size == 0:
            break
        for chunk in np.array_split(act, max(1, act.size * r * r // 4_000_000)):
            tc, zc = tau[:, chunk], z[chunk]
            mc = m[:, chunk]
            F = tc - _rmul(op.C, mc)
            J = np.eye(r) - op.jacobian_products(mc**2).T.reshape(-1, r, r)
            delta = np.linalg.solve(J, -F.T[:, :, None])[:, :, 0].T
            t = np.ones(chunk.size)
            pending = np.arange(chunk.size)
            for _ in range(20):
                trial = tc[:, pending] + t[pending] * delta[:, pending]
                m_new, new_res = _tau_residual(op, trial, zc[pending])
                good = _admissible(m_new, zc[pending]) & (new_res < res[chunk[pending]])
                idx = chunk[pending[good]]
                tau[:, idx], m[:, idx], res[idx] = trial[:, good], m_new[:, good], new_res[good]
                pending = pending[~good]
                if pending.size == 0:
                    break
                t[pending] /= 2
            stalled[chunk[pending]] = True
    return tau


def _newton_dense(
    op: _Operator, m: np.ndarray, z: np.ndarray, tol: float, steps: int
) -> np.ndarray:
    """Run Newton's method on m itself, J = I − diag(m²)·S·W (K×K).

    For a profile that is not low-rank; used only where it is affordable (a few points, as
    for real z).
    """
    K = m.shape[0]
    if z.size * K**3 > 1e10:
        return m
    SW = op.B @ op.C
    for g in range(z.size):
        mg, zg = m[:, g : g + 1], z[g : g + 1]
        res = _residual(op, mg, zg)[0]
        for _ in range(steps):
            if res <= tol:
                break
            phi = -1.0 / (zg + op.apply(mg))
            delta = np.linalg.solve(np.eye(K) - phi**2 * SW, phi - mg)
            for t in 0.5 ** np.arange(20):
                trial = mg + t * delta
                new = _residual(op, trial, zg)[0]
                if _admissible(trial, zg)[0] and new < res:
                    mg, res = trial, new
                    break
            else:
                break
        m[:, g] = mg[:, 0]
    return m


def _initial_guess(op: _Operator, z: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """Start values of τ.

    For many points on one horizontal line, solutions on every 8th point (solved
    recursively), interpolated; otherwise 40 averaged steps from m = i (C⁺) or m = −1/z
    (real z).
    """
    if z.size > 64 and np.all(z.imag == z.imag[0]):
        order = np.argsort(z.real, kind="stable")
        coarse = np.unique(np.append(order[::8], order[-1]))
        coarse = coarse[np.argsort(z.real[coarse], kind="stable")]
        xc = z.real[coarse]
        tc = _solve_tau(op, z[coarse], tol, max_iter)
        hi = np.clip(np.searchsorted(xc, z.real), 1, xc.size - 1)
        span = xc[hi] - xc[hi - 1]
        t = np.where(span > 0, (z.real - xc[hi - 1]) / np.where(span > 0, span, 1.0), 0.0)
        return (1 - t) * tc[:, hi - 1] + t * tc[:, hi]
    K = op.B.shape[0]
    m = np.where(z.imag > 0, 1j, -1.0 / np.where(z == 0, 1.0, z)) * np.ones((K, 1))
    return _average(op, _rmul(op.C, m), z, min(40, max_iter))


def _solve_tau(op: _Operator, z: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    tau = _newton(op, _initial_guess(op, z, tol, max_iter), z, tol, steps=50)
    left = _tau_residual(op, tau, z)[1] > tol
    it = 0
    while left.any() and it < max_iter:
        sub = _average(op, tau[:, left], z[left], 50)
        tau[:, left] = _newton(op, sub, z[left], tol, steps=20)
        left = _tau_residual(op, tau, z)[1] > tol
        it += 50
    if left.any():
        raise RuntimeError(
            f"vector Dyson solver did not reach tol={tol:g} at {int(left.sum())} points "
            f"(e.g. z={z[left][0]:.6g}); increase eta or max_iter"
        )
    return tau


def _solve_dyson(op: _Operator, z: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """m(z) for each z (columns): averaged iteration and Newton's method on τ = C m.

    The averaged map m ← ½m + ½·(−1/(z + S m)) (Helton, Rashidi Far & Speicher 2007)
    converges from any admissible start for Im z > 0 and, for real z outside the support,
    from m = −1/z; Newton removes its slow convergence next to the edges. Points where
    Newton stalls go back to the averaged map, then to Newton again.
    """
    return _phi(op, _solve_tau(op, z, tol, max_iter), z)


def _upper_bound(op: _Operator) -> float:
    """2·sqrt(max row sum), a bound on the support.

    The support lies in [−b, b] with b = 2√(max_i Σ_j s_ij) (for Gaussian entries this also
    follows from Bandeira & van Handel 2016).
    """
    return 2.0 * np.sqrt(op.row_sums.max())


def _check_solver(tol: float, max_iter: int) -> tuple[float, int]:
    return positive_scalar("tol", tol), integer("max_iter", max_iter)


def dyson_stieltjes(
    S: ArrayLike,
    z: ArrayLike,
    fractions: ArrayLike | None = None,
    *,
    tol: float = 1e-12,
    max_iter: int = 20_000,
) -> np.ndarray:
    r"""Stieltjes vector G_i(z) of a variance-profile matrix (vector Dyson equation).

    Solves the quadratic vector equation (Ajanki, Erdős & Krüger 2017, Eq. 1.3)

    .. math:: -\frac{1}{m_i(z)} = z + \sum_j s_{ij} m_j(z), \qquad \operatorname{Im} m_i > 0,

    with s_ij = S_ij/n (or α_l S_kl for a K-block profile), and returns G_i = −m_i, the
    G-convention diagonal of the resolvent, (z − X)⁻¹_ii ≈ G_i(z) (local law). For real z
    above (below) the support it returns the real G_i(λ) = 1/(λ − Σ_j s_ij G_j) continued
    from infinity, which enters the outlier equation of :func:`profile_outlier`.

    Parameters
    ----------
    S : array_like
        n×n (or K×K with ``fractions``) symmetric non-negative variance profile.
    z : array_like
        Points with Im z > 0, or real points outside [−E, E] (E = :func:`dyson_edge`).
    fractions : array_like, optional
        Block sizes α_k (positive, summing to 1) for a K-block profile.
    tol : float
        Relative residual at which the solver stops.
    max_iter : int
        Most averaged iterations before giving up.

    Returns
    -------
    numpy.ndarray
        Array of shape ``z.shape + (K,)`` (real for real z).

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If the profile or fractions are invalid, z is not finite, some Im z < 0, or a real
        z lies inside the support.
    RuntimeError
        If the solver does not reach ``tol`` in ``max_iter`` iterations.

    Examples
    --------
    >>> # A constant profile is the semicircle: G(3) = (3 − √5)/2 for σ = 1.
    >>> dyson_stieltjes([[1.0]], 3.0).round(6)
    array([0.381966])
    """
    S, w = _check_profile(S, fractions)
    tol, max_iter = _check_solver(tol, max_iter)
    z = np.asarray(z)
    if z.dtype.kind not in "iufc":
        raise TypeError(f"z must be complex number(s), got {z!r}")
    z = z.astype(complex)
    if z.size == 0 or not np.all(np.isfinite(z)):
        raise ValueError("z must be a non-empty array of finite numbers")
    if np.any(z.imag < 0):
        raise ValueError("z must lie in the closed upper half plane (Im z >= 0)")
    op = _Operator(S, w)
    flat = z.ravel()
    on_axis = flat.imag == 0
    if on_axis.any():
        edge = _edge(op)
        if np.any(np.abs(flat.real[on_axis]) <= edge):
            raise ValueError(
                f"real z must lie outside the support [-{edge:.6g}, {edge:.6g}]; "
                "use Im z > 0 inside it"
            )
    m = _solve_dyson(op, flat, tol, max_iter)
    G = -m.T
    if np.all(on_axis):
        G = G.real
    return G.reshape(z.shape + (S.shape[0],))


def dyson_density(
    S: ArrayLike,
    x: ArrayLike,
    fractions: ArrayLike | None = None,
    *,
    eta: float | None = None,
    tol: float = 1e-12,
    max_iter: int = 20_000,
) -> float | np.ndarray:
    r"""Limiting eigenvalue density of a Wigner-type matrix with variance profile S.

    .. math:: ρ(x) = \frac{1}{π} \sum_i w_i \operatorname{Im} m_i(x + iη)

    from the vector Dyson equation (Ajanki, Erdős & Krüger 2017), w_i = 1/n or the block
    fractions α_k. All grid points are solved at once by the averaged iteration
    m ← ½m + ½(−1/(z + Sm)) (Helton, Rashidi Far & Speicher 2007) followed by Newton's
    method (Jacobian I − diag(m²)S); large profiles are compressed to their numerical rank
    first. For a constant profile, and for any stochastic profile (equal row sums σ²,
    generalised Wigner: Erdős, Yau & Yin 2012, the paper's Thm 3 (ii)), this is the
    semicircle of variance σ². Against simulation (2-block profile [[1, 0.2], [0.2, 3]],
    α = (½, ½), n = 2000) the Kolmogorov–Smirnov distance is 0.0024.

    Parameters
    ----------
    S : array_like
        n×n (or K×K with ``fractions``) symmetric non-negative variance profile,
        E X_ij² = S_ij/n.
    x : array_like
        Real grid.
    fractions : array_like, optional
        Block sizes α_k for a K-block profile.
    eta : float, optional
        Distance from the real axis; default 1e−8·2√(max row sum), or 1e−3·2√(max row sum)
        for a profile that is not numerically low-rank (there only the averaged iteration
        is used, whose convergence near the edges slows as η → 0). The result is ρ
        smoothed by a Cauchy kernel of half-width η (error O(η) in the bulk, O(√η) at an
        edge).
    tol : float
        Relative residual at which the solver stops.
    max_iter : int
        Most averaged iterations before giving up.

    Returns
    -------
    float or numpy.ndarray
        ρ(x), shaped like ``x``.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If the profile or fractions are invalid, ``x`` is empty or not finite, or ``eta``
        is not finite and > 0.
    RuntimeError
        If the solver does not reach ``tol`` in ``max_iter`` iterations.

    Examples
    --------
    >>> # A stochastic profile (equal row sums 2) gives the semicircle of variance 2.
    >>> from rmtlr.rmt.laws import semicircle_pdf
    >>> rho = dyson_density([[0.5, 3.5], [3.5, 0.5]], [0.0, 1.0], [0.5, 0.5])
    >>> bool(np.allclose(rho, semicircle_pdf([0.0, 1.0], np.sqrt(2.0)), atol=1e-6))
    True
    """
    S, w = _check_profile(S, fractions)
    tol, max_iter = _check_solver(tol, max_iter)
    x = finite("x", x)
    if x.size == 0:
        raise ValueError("x must be a non-empty array of finite numbers")
    op = _Operator(S, w)
    if eta is None:
        eta = (1e-8 if op.newton else 1e-3) * _upper_bound(op)
    eta = positive_scalar("eta", eta)
    m = _solve_dyson(op, x.ravel() + 1j * eta, tol, max_iter)
    return scalar_or_array((w @ m.imag / np.pi).reshape(x.shape))


def _real_solution(
    op: _Operator, lam: float, g0: np.ndarray | None, tol: float
) -> tuple[np.ndarray, float] | None:
    """(g, Perron root of diag(g²)SW) at real λ > 0 on the branch from +∞, or None."""
    m = (-g0 if g0 is not None else np.full(op.B.shape[0], -1.0 / lam)).astype(complex)[:, None]
    z = np.array([lam + 0j])
    tau = _newton(op, _average(op, _rmul(op.C, m), z, 20), z, tol, steps=60)
    m, res = _tau_residual(op, tau, z)
    if res[0] > tol or not _admissible(m, z)[0]:
        return None
    g = -m[:, 0].real
    # Along the branch from +∞ the stability operator I − diag(g²)SW stays invertible; its
    # Perron root reaching 1 marks the edge (AEK 2017, Sec. 9).
    perron = _perron(op, g**2)
    return (g, perron) if perron < 1 else None


def _perron(op: _Operator, d: np.ndarray) -> float:
    """Perron root of the non-negative diag(d)·S·W.

    From the r×r matrix C·diag(d)·B, which has the same non-zero eigenvalues, or by power
    iteration when r is large.
    """
    if op.rank <= 200:
        return float(np.abs(np.linalg.eigvals((op.C * d) @ op.B)).max())
    v = np.ones(d.size)
    root = 0.0
    for _ in range(10_000):
        u = d * (op.B @ (op.C @ v))
        new, v = np.linalg.norm(u) / np.linalg.norm(v), u / np.linalg.norm(u)
        if abs(new - root) <= 1e-13 * new:
            break
        root = new
    return float(new)


_EDGE_CACHE: dict[bytes, float] = {}


def _edge(op: _Operator, tol: float = 1e-12) -> float:
    """Upper edge of the support, cached per profile.

    Root finders on the real axis (outliers) call :func:`dyson_stieltjes` many times for
    the same profile.
    """
    key = hashlib.blake2b(op.B.tobytes() + op.C.tobytes(), digest_size=16).digest()
    if key not in _EDGE_CACHE:
        if len(_EDGE_CACHE) >= 32:
            _EDGE_CACHE.pop(next(iter(_EDGE_CACHE)))
        _EDGE_CACHE[key] = _bisect_edge(op, tol)
    return _EDGE_CACHE[key]


def _bisect_edge(op: _Operator, tol: float) -> float:
    top = _upper_bound(op)
    # Bracket from inside the top band: the largest coarse-grid point where the density is at
    # least 1% of its maximum, so that bisection cannot land in a gap between bands.
    grid = np.linspace(0.0, top, 201)
    rho = op.w @ _solve_dyson(op, grid + 1e-3 * top * 1j, 1e-10, 20_000).imag
    lo = grid[np.flatnonzero(rho >= 0.01 * rho.max()).max()]
    hi = 1.01 * top + 1e-12
    sol = _real_solution(op, hi, None, tol)
    while sol is None:
        hi *= 2
        sol = _real_solution(op, hi, None, tol)
    g = sol[0]
    while hi - lo > 1e-10 * top:
        mid = 0.5 * (lo + hi)
        sol = _real_solution(op, mid, g, tol)
        if sol is None:
            lo = mid
        else:
            hi, g = mid, sol[0]
    return hi


def dyson_edge(S: ArrayLike, fractions: ArrayLike | None = None) -> float:
    r"""Upper edge E of the support of the vector-Dyson density (the support is [−E, E]).

    E is where the real solution G(λ) continued from λ = +∞ ceases to exist: the Perron root
    of the stability operator diag(G²)·S reaches 1 (Ajanki, Erdős & Krüger 2017: only
    square-root edges occur). Found by bisection to 1e−10 relative accuracy, bracketed by
    the top band of a coarse density scan and 2·sqrt(max row sum). For a constant profile
    σ², E = 2σ; in general there is no closed form: the 2-block profile [[1, .2], [.2, 3]]
    with α = (½, ½) has E = 2.495, between 2√(Perron root of S·diag α) = 2.458 and
    2√(max row sum) = 2.530.

    Parameters
    ----------
    S : array_like
        n×n (or K×K with ``fractions``) symmetric non-negative variance profile.
    fractions : array_like, optional
        Block sizes α_k for a K-block profile.

    Returns
    -------
    float
        E.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If the profile or fractions are invalid.

    Examples
    --------
    >>> round(dyson_edge([[1.0, 0.2], [0.2, 3.0]], [0.5, 0.5]), 3)
    2.495
    """
    S, w = _check_profile(S, fractions)
    return float(_edge(_Operator(S, w)))


def mean_variance(S: ArrayLike, fractions: ArrayLike | None = None) -> float:
    r"""Mean variance σ̄² = Σ_kl α_k α_l S_kl (= n × the mean entry variance).

    This is the paper's (P/𝔟)σ_ε² (Thms 3–4): it sets the semicircle radius 2σ̄ and the
    outlier θ + σ̄²/θ of Lemma 5 / Theorem 4, exactly when all rows have the same sum.

    Parameters
    ----------
    S : array_like
        n×n (or K×K with ``fractions``) symmetric non-negative variance profile.
    fractions : array_like, optional
        Block sizes α_k for a K-block profile.

    Returns
    -------
    float
        σ̄².

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If the profile or fractions are invalid.

    Examples
    --------
    >>> round(mean_variance([[1.0, 0.2], [0.2, 3.0]], [0.5, 0.5]), 12)
    1.1
    """
    S, w = _check_profile(S, fractions)
    return float(w @ S @ w)


# --- spikes on a variance profile ----------------------------------------------------------------


class ProfileOutlier(NamedTuple):
    """Placement-aware spike prediction of :func:`profile_outlier`.

    Attributes
    ----------
    outlier : float or numpy.ndarray
        Limiting extreme eigenvalue, shaped like θ (±E without an outlier).
    overlap : float or numpy.ndarray
        Limiting squared overlap |⟨u, v⟩|², shaped like θ (0 without an outlier).
    threshold : float
        θ_c > 0, which depends on where v lives but not on θ.
    """

    outlier: float | np.ndarray
    overlap: float | np.ndarray
    threshold: float


def profile_outlier(
    theta: ArrayLike, v_weights: ArrayLike, S: ArrayLike, fractions: ArrayLike | None = None
) -> ProfileOutlier:
    r"""Outlier and overlap of X + θvvᵀ, X with variance profile S, for a given placement of v.

    By the isotropic local law (Knowles & Yin 2013; Ajanki, Erdős & Krüger 2017),
    ⟨v, (λ − X)⁻¹v⟩ → h(λ) = Σ_i v_i² G_i(λ), with G_i the vector-Dyson Stieltjes vector
    (:func:`dyson_stieltjes`). As in Benaych-Georges & Nadakuditi (2011), whose result is the
    paper's Lemma 5:

    - outlier ρ solves θh(ρ) = 1, for θ above the threshold θ_c = 1/h(E⁺);
    - overlap |⟨u, v⟩|² → −1/(θ²h′(ρ)), with G′ = −(I − diag(G²)SW)⁻¹G²;
    - below threshold the top eigenvalue sticks to the edge E and the overlap is 0.

    The paper's formula θ + σ̄²/θ (:func:`mean_variance`) is the special case of equal row
    sums; otherwise the outlier depends on where v lives, not only on the mean variance.
    On the 2-block profile [[1, .2], [.2, 3]], α = (½, ½), θ = 3, simulation at n = 2000
    gives 3.195 (v in block 1), 3.520 (block 2) and 3.398 (spread evenly) against the
    predictions 3.205, 3.530 and 3.388, while θ + σ̄²/θ = 3.367 for all three. Negative θ
    give the mirror image below −E (the law of X is symmetric).

    Parameters
    ----------
    theta : array_like
        Spike strength(s), non-zero; an array gives arrays of outliers and overlaps.
    v_weights : array_like
        Squared entries v_i² (length n), or per-block masses Σ_{i∈k} v_i² (length K);
        non-negative and summing to 1.
    S : array_like
        The variance profile, as in :func:`dyson_density`.
    fractions : array_like, optional
        Block sizes α_k for a K-block profile.

    Returns
    -------
    ProfileOutlier
        ``(outlier, overlap, threshold)``.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If θ is zero or not finite, the weights have the wrong length, are negative or do
        not sum to 1, or the profile is invalid.

    Examples
    --------
    >>> S, fr = [[1.0, 0.2], [0.2, 3.0]], [0.5, 0.5]
    >>> round(profile_outlier(3.0, [1.0, 0.0], S, fr).outlier, 3)  # v in the quiet block
    3.205
    """
    S, w = _check_profile(S, fractions)
    theta = real("theta (spike strength)", theta)
    if theta.size == 0 or not np.all(np.isfinite(theta)) or np.any(theta == 0):
        raise ValueError(f"theta must be finite and non-zero, got {theta!r}")
    u = real("v_weights", v_weights).ravel()
    if u.size != S.shape[0]:
        raise ValueError(
            f"v_weights must have length {S.shape[0]} (one per row/block), got {u.size}"
        )
    if not np.all(np.isfinite(u)) or np.any(u < 0) or not np.isclose(u.sum(), 1.0, atol=1e-9):
        raise ValueError("v_weights must be non-negative and sum to 1 (they are v_i² for a unit v)")
    op = _Operator(S, w)
    edge = _edge(op)

    def g_at(lam: float) -> np.ndarray:
        return -_solve_dyson(op, np.array([lam + 0j]), 1e-13, 20_000)[:, 0].real

    def h(lam: float) -> float:
        return float(u @ g_at(lam))

    # G is analytic up to the edge with a square-root singularity, so h(E⁺) is the limit of
    # h at E(1 + δ); δ = 1e-9 leaves an O(√δ) ≈ 3e-5 relative error in the threshold.
    threshold = 1.0 / h(edge * (1 + 1e-9))
    outlier, overlap = np.empty(theta.shape), np.empty(theta.shape)
    for idx, th in np.ndenumerate(theta):
        t = abs(th)
        if t <= threshold:
            outlier[idx], overlap[idx] = np.sign(th) * edge, 0.0
            continue
        hi = 2.0 * edge
        while h(hi) > 1.0 / t:
            hi *= 2
        rho = brentq(
            lambda lam, t=t: h(lam) - 1.0 / t, edge * (1 + 1e-9), hi, xtol=1e-13, rtol=1e-13
        )
        g = g_at(rho)
        # G′ = −(I − D B C)⁻¹ G² with D = diag(G²), by Woodbury:
        # (I − D B C)⁻¹ = I + D B (I − C D B)⁻¹ C, an r×r solve.
        DB = g[:, None] ** 2 * op.B
        dg = -(g**2 + DB @ np.linalg.solve(np.eye(op.rank) - op.C @ DB, op.C @ g**2))
        outlier[idx], overlap[idx] = np.sign(th) * rho, -1.0 / (t**2 * float(u @ dg))
    return ProfileOutlier(scalar_or_array(outlier), scalar_or_array(overlap), float(threshold))
