"""Limiting spectral laws: semicircle, Marchenko–Pastur, Tracy–Widom, and Stieltjes transforms.

Convention (RMT_NOTES §0.1): the Stieltjes transform is

    G(z) = ∫ ρ(x) / (z − x) dx = (1/N) tr (z − M)⁻¹,

so G(z) ~ 1/z at infinity and Im G < 0 on the upper half plane C⁺; the density is recovered
by ρ(x) = −(1/π) lim_{η↓0} Im G(x + iη). (Bai–Silverstein and Erdős et al. write
m(z) = −G(z).) The outlier formulas of Benaych-Georges & Nadakuditi (2011) are written in G.

Square roots √((z−a)(z−b)) are always evaluated as √(z−a)·√(z−b), the product of two
principal roots, which is the branch with G ~ 1/z on all of C⁺ and on the real axis outside
[a, b]; √((z−a)(z−b)) taken directly is the wrong branch on part of C⁺.
"""

from __future__ import annotations

import numpy as np
from scipy.special import airy

__all__ = [
    "TW1_MEAN",
    "TW1_SD",
    "TW2_MEAN",
    "TW2_SD",
    "edge_fluctuation_scale",
    "empirical_stieltjes",
    "mp_atom",
    "mp_cdf",
    "mp_edges",
    "mp_pdf",
    "mp_stieltjes",
    "semicircle_cdf",
    "semicircle_edge",
    "semicircle_pdf",
    "semicircle_stieltjes",
    "tracy_widom_cdf",
]

# Moments of the Tracy–Widom laws (Bornemann 2010; RMT_NOTES §7.1, where they are
# recomputed from the Fredholm determinants). β = 1 is the real (GOE) case that applies to
# Hessians, β = 2 the complex (GUE) case.
TW1_MEAN = -1.2065335745820
TW1_SD = float(np.sqrt(1.6077810345810))
TW2_MEAN = -1.7710868074116
TW2_SD = float(np.sqrt(0.8131947928329))


def _out(x: np.ndarray):
    return x.item() if np.ndim(x) == 0 else x


def _positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive real number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def _real(name: str, x) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} must not contain NaN")
    return arr


def _complex(name: str, z) -> np.ndarray:
    arr = np.asarray(z, dtype=complex)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite complex number(s)")
    # A real point passed as complex(x, -0.0) would select the boundary value from below.
    return np.where(arr.imag == 0, arr.real + 0j, arr)


# --- Wigner semicircle ------------------------------------------------------------------


def semicircle_edge(sigma=1.0) -> float:
    """Upper edge 2σ of the semicircle law (the lower edge is −2σ; Wigner 1958).

    σ² is N times the off-diagonal variance, so a GOE matrix with E H_ij² = σ²/N has its
    spectrum in [−2σ, 2σ] as N → ∞ (and λ_max → 2σ, Bai–Yin 1988).
    """
    return 2.0 * _positive("sigma", sigma)


def semicircle_pdf(x, sigma=1.0):
    r"""Semicircle density ρ_sc(x) = √(4σ² − x²) / (2πσ²) on [−2σ, 2σ], 0 outside.

    Wigner's law (Wigner 1958; the paper's Thm 3 for the batch noise ε, RMT_NOTES §1).
    """
    sigma = _positive("sigma", sigma)
    x = _real("x", x)
    return _out(np.sqrt(np.clip(4 * sigma**2 - x**2, 0.0, None)) / (2 * np.pi * sigma**2))


def semicircle_cdf(x, sigma=1.0):
    r"""Semicircle distribution function (RMT_NOTES §1)

    F(x) = ½ + x√(4σ² − x²)/(4πσ²) + arcsin(x/(2σ))/π  for |x| ≤ 2σ,

    0 below −2σ and 1 above 2σ.
    """
    sigma = _positive("sigma", sigma)
    t = np.clip(_real("x", x) / (2 * sigma), -1.0, 1.0)
    return _out(0.5 + (t * np.sqrt(1 - t**2) + np.arcsin(t)) / np.pi)


def semicircle_stieltjes(z, sigma=1.0):
    r"""Stieltjes transform of the semicircle, G(z) = (z − √(z−2σ)√(z+2σ)) / (2σ²).

    It is the root of σ²G² − zG + 1 = 0 with G ~ 1/z (Potters & Bouchaud 2020),
    evaluated in the algebraically equal form 2/(z + √(z−2σ)√(z+2σ)) to avoid cancellation
    at large |z|. Real z inside [−2σ, 2σ] return the boundary value G(x + i0) from C⁺,
    whose imaginary part is −π ρ_sc(x).
    """
    sigma = _positive("sigma", sigma)
    z = _complex("z", z)
    return _out(2.0 / (z + np.sqrt(z - 2 * sigma) * np.sqrt(z + 2 * sigma)))


# --- Marchenko–Pastur -------------------------------------------------------------------


def _check_q(q) -> float:
    return _positive("q (ratio p/n)", q)


def mp_atom(q) -> float:
    """Mass max(0, 1 − 1/q) of the Marchenko–Pastur law at 0.

    When p > n (q = p/n > 1), X Xᵀ/n has p − n zero eigenvalues (Marchenko & Pastur 1967).
    """
    q = _check_q(q)
    return max(0.0, 1.0 - 1.0 / q)


def mp_edges(q, sigma=1.0) -> tuple[float, float]:
    """Edges λ± = σ²(1 ± √q)² of the continuous part of the Marchenko–Pastur law.

    For W = X Xᵀ/n with X p×n i.i.d. of variance σ², q = p/n (Marchenko & Pastur 1967).
    """
    q = _check_q(q)
    s2 = _positive("sigma", sigma) ** 2
    return s2 * (1 - np.sqrt(q)) ** 2, s2 * (1 + np.sqrt(q)) ** 2


def mp_pdf(x, q, sigma=1.0):
    r"""Continuous part of the Marchenko–Pastur density (Marchenko & Pastur 1967; RMT_NOTES §2)

    ρ(x) = √((λ₊ − x)(x − λ₋)) / (2π σ² q x)  on (λ₋, λ₊), 0 elsewhere.

    It integrates to 1 for q ≤ 1 and to 1/q for q > 1; the remaining mass sits in an atom at
    0 (:func:`mp_atom`), which this density does not contain.
    """
    q = _check_q(q)
    sigma = _positive("sigma", sigma)
    lo, hi = mp_edges(q, sigma)
    x = _real("x", x)
    inside = (x > lo) & (x < hi)
    xs = np.where(inside, x, 0.5 * (lo + hi))
    dens = np.sqrt((hi - xs) * (xs - lo)) / (2 * np.pi * sigma**2 * q * xs)
    return _out(np.where(inside, dens, 0.0))


def mp_cdf(x, q, sigma=1.0):
    r"""Marchenko–Pastur distribution function, atom included.

    With m = σ²(1+q), r = 2σ²√q and x = m − r cos φ (φ ∈ [0, π]), integrating the density
    gives the closed form (a standard substitution; Marchenko & Pastur 1967)

    F(x) = atom·[x ≥ 0] + (1/(2πq)) [ r sin φ + mφ − 2σ²|1 − q| arctan(√(λ₊/λ₋) tan(φ/2)) ]/σ²,

    which rises from the atom 1 − 1/q (q > 1, else 0) at λ₋ to 1 at λ₊.
    """
    q = _check_q(q)
    s2 = _positive("sigma", sigma) ** 2
    lo, hi = mp_edges(q, sigma)
    x = _real("x", x)
    m, r = s2 * (1 + q), 2 * s2 * np.sqrt(q)
    phi = np.arccos(np.clip((m - x) / r, -1.0, 1.0))
    # arctan2 keeps the q = 1 case (λ₋ = 0, coefficient |1 − q| = 0) finite.
    arc = np.arctan2(np.sqrt(hi) * np.sin(phi / 2), np.sqrt(lo) * np.cos(phi / 2))
    cont = (r * np.sin(phi) + m * phi - 2 * s2 * abs(1 - q) * arc) / (2 * np.pi * q * s2)
    atom = np.where(x >= 0, mp_atom(q), 0.0)
    return _out(np.where(x >= hi, 1.0, np.clip(atom + cont, 0.0, 1.0)))


def mp_stieltjes(z, q, sigma=1.0):
    r"""Stieltjes transform of the Marchenko–Pastur law, atom included (RMT_NOTES §2)

    G(z) = (z − σ²(1−q) − √(z−λ₊)√(z−λ₋)) / (2qσ²z),

    the root of qσ²zG² − (z − σ²(1−q))G + 1 = 0 with G ~ 1/z, evaluated as
    2/(z − σ²(1−q) + √(z−λ₊)√(z−λ₋)). For q > 1 it has the pole (1 − 1/q)/z of the atom.
    Real z in the support return G(x + i0).

    Raises ValueError at z = 0 when q ≥ 1, where G has a pole.
    """
    q = _check_q(q)
    sigma = _positive("sigma", sigma)
    lo, hi = mp_edges(q, sigma)
    z = _complex("z", z)
    if q >= 1 and np.any(z == 0):
        raise ValueError(
            "z must be != 0 for q >= 1 (the Marchenko–Pastur transform has a pole at 0)"
        )
    denom = z - sigma**2 * (1 - q) + np.sqrt(z - hi) * np.sqrt(z - lo)
    return _out(2.0 / denom)


# --- empirical transform, edges and Tracy–Widom ------------------------------------------


def empirical_stieltjes(eigs, z):
    r"""Empirical Stieltjes transform G_N(z) = (1/N) Σ_i 1/(z − λ_i) = (1/N) tr (z − M)⁻¹.

    Vectorised over z (any shape). At finite η = Im z, −Im G_N(x + iη)/π is the eigenvalue
    histogram smoothed by a Cauchy kernel of half-width η, so η must exceed the local spacing
    (~1/N in the bulk) to approximate the limiting density (RMT_NOTES §0.1).

    Raises ValueError if z coincides with an eigenvalue.
    """
    eigs = np.asarray(eigs, dtype=float).ravel()
    if eigs.size == 0 or not np.all(np.isfinite(eigs)):
        raise ValueError("eigs must be a non-empty array of finite eigenvalues")
    z = _complex("z", z)
    diff = z[..., None] - eigs
    if np.any(diff == 0):
        raise ValueError("z must not coincide with an eigenvalue (G_N has a pole there)")
    return _out(np.mean(1.0 / diff, axis=-1))


def edge_fluctuation_scale(n, sigma=1.0) -> float:
    r"""Tracy–Widom scale σ N^(−2/3) of the largest eigenvalue at a semicircle edge.

    λ_max = 2σ + σ N^(−2/3) TW₁ + o(N^(−2/3)) for GOE-type noise (Tracy & Widom 1996;
    RMT_NOTES §7.1); tests use |λ_max − 2σ| < 5 σ N^(−2/3).
    """
    try:
        n_val = float(n)
    except (TypeError, ValueError):
        raise ValueError(f"n must be a positive integer, got {n!r}") from None
    if not np.isfinite(n_val) or n_val < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    return _positive("sigma", sigma) * n_val ** (-2.0 / 3.0)


def _tw_fredholm(s: float, beta: int, nodes: int) -> float:
    # det(I − K) on L²(s, ∞) by Gauss–Legendre (Nyström) quadrature (Bornemann 2010); the
    # Airy kernels decay like exp(−(2/3)x^{3/2}), so (s, s + 16) carries all the mass.
    t, w = np.polynomial.legendre.leggauss(nodes)
    length = 16.0
    x = s + (t + 1) * length / 2
    w = w * length / 2
    if beta == 2:
        ai, aip, _, _ = airy(x)
        dx = x[:, None] - x[None, :]
        off = np.divide(
            ai[:, None] * aip[None, :] - aip[:, None] * ai[None, :],
            dx,
            out=np.zeros_like(dx),
            where=dx != 0,
        )
        kern = off + np.diag(aip**2 - x * ai**2)
    else:
        # F₁(s) = det(I − K₁), K₁(x, y) = ½ Ai((x + y)/2) on (s, ∞) (Ferrari–Spohn 2005).
        kern = 0.5 * airy((x[:, None] + x[None, :]) / 2)[0]
    sw = np.sqrt(w)
    return float(np.linalg.det(np.eye(nodes) - sw[:, None] * kern * sw[None, :]))


def tracy_widom_cdf(s, beta=1, nodes=60):
    r"""Tracy–Widom distribution F_β(s), β ∈ {1, 2}, from its Fredholm determinant.

    F₂(s) = det(I − K_Ai) on L²(s, ∞) with the Airy kernel
    K_Ai(x, y) = (Ai(x)Ai′(y) − Ai′(x)Ai(y))/(x − y) (Tracy & Widom 1994), and
    F₁(s) = det(I − ½Ai((x + y)/2)) on L²(s, ∞) (Tracy & Widom 1996 in Ferrari–Spohn form),
    evaluated by Gauss–Legendre quadrature with ``nodes`` points (Bornemann 2010), which is
    accurate to ~1e−12 for s ≥ −8 with the default.
    """
    if beta not in (1, 2):
        raise ValueError(f"beta must be 1 or 2, got {beta!r}")
    if not isinstance(nodes, (int, np.integer)) or nodes < 10:
        raise ValueError(f"nodes must be an integer >= 10, got {nodes!r}")
    s = _real("s", s)
    if np.any(np.isinf(s)):
        raise ValueError("s must be finite")
    vals = np.vectorize(lambda v: _tw_fredholm(float(v), beta, int(nodes)))(s)
    return _out(np.clip(np.asarray(vals, dtype=float), 0.0, 1.0))
