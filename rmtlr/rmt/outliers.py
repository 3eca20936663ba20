r"""Outliers of low-rank perturbations: the BBP transition and eigenvector overlaps.

For M = W + θvvᵀ with ‖v‖ = 1 and W a noise matrix with limiting law μ on [a, b], the
Benaych-Georges–Nadakuditi (2011) theorem says, with G the Stieltjes transform of μ in the
convention G(z) = ∫ dμ(x)/(z − x) (see :mod:`rmtlr.rmt.laws`):

- an eigenvalue separates from the bulk iff θ > 1/G(b⁺) (or θ < 1/G(a⁻) below it), and it
  converges to the root ρ of G(ρ) = 1/θ outside [a, b];
- the top eigenvector u then has squared overlap |⟨u, v⟩|² → −1/(θ² G′(ρ)), and 0 otherwise.

For Wigner noise this is Lemma 5 of Granziol, Zohren & Roberts (2022): ρ = θ + σ²/θ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq

from rmtlr.rmt.laws import mp_edges
from rmtlr.rmt.validation import finite, positive_scalar, scalar_or_array

__all__ = [
    "BGNOutliers",
    "MPAdditiveOutlier",
    "bbp_threshold",
    "mp_additive_outlier",
    "outliers_from_stieltjes",
    "spiked_outlier",
    "spiked_outlier_sd",
    "spiked_overlap",
]


def _thetas(theta: ArrayLike) -> np.ndarray:
    return finite("theta (spike strength)", theta)


def bbp_threshold(sigma: float = 1.0) -> float:
    """BBP threshold θ_c = σ for a rank-one spike on a semicircle of radius 2σ.

    A spike |θ| > σ produces an outlier; |θ| ≤ σ does not (Baik, Ben Arous & Péché 2005;
    Péché 2006; Lemma 5 of the paper). It is 1/G_sc(2σ) = σ.

    Parameters
    ----------
    sigma : float
        Scale σ > 0 of the semicircle.

    Returns
    -------
    float
        θ_c = σ.

    Raises
    ------
    TypeError
        If ``sigma`` is not a real number.
    ValueError
        If ``sigma`` is not finite and > 0.

    Examples
    --------
    >>> bbp_threshold(0.5)
    0.5
    """
    return positive_scalar("sigma", sigma)


def spiked_outlier(theta: ArrayLike, sigma: float = 1.0) -> float | np.ndarray:
    r"""Limit of the extreme eigenvalue of θvvᵀ + W, W Wigner of radius 2σ (Lemma 5).

    λ → θ + σ²/θ if |θ| > σ, and to the edge sign(θ)·2σ otherwise (θ = 0: the upper edge).
    Positive spikes give the top eigenvalue, negative spikes the bottom one (Féral & Péché
    2007; Capitaine, Donati-Martin & Féral 2009 for finite rank, each spike separately).
    At n = 2000 a simulation gives 2.504 for θ = 2 (limit 2.5) and 3.335 for θ = 3 (3.333).

    Parameters
    ----------
    theta : array_like
        Spike strength(s) θ, any sign.
    sigma : float
        Scale σ > 0 of the semicircle.

    Returns
    -------
    float or numpy.ndarray
        The limiting eigenvalue(s), shaped like ``theta``.

    Raises
    ------
    TypeError
        If ``theta`` or ``sigma`` is not real.
    ValueError
        If ``theta`` is not finite or ``sigma`` is not finite and > 0.

    Examples
    --------
    >>> spiked_outlier([2.0, 0.5, -2.0])
    array([ 2.5,  2. , -2.5])
    """
    sigma = positive_scalar("sigma", sigma)
    theta = _thetas(theta)
    above = np.abs(theta) > sigma
    safe = np.where(above, theta, 1.0)
    edge = np.where(theta < 0, -2.0 * sigma, 2.0 * sigma)
    return scalar_or_array(np.where(above, safe + sigma**2 / safe, edge))


def spiked_overlap(theta: ArrayLike, sigma: float = 1.0) -> float | np.ndarray:
    r"""Squared overlap |⟨u, v⟩|² → 1 − σ²/θ² for |θ| > σ, and 0 otherwise.

    u is the outlier's eigenvector and v the spike direction (Benaych-Georges & Nadakuditi
    2011; the form used by Theorem 10 of the paper).

    Parameters
    ----------
    theta : array_like
        Spike strength(s) θ, any sign.
    sigma : float
        Scale σ > 0 of the semicircle.

    Returns
    -------
    float or numpy.ndarray
        The limiting squared overlap(s), shaped like ``theta``.

    Raises
    ------
    TypeError
        If ``theta`` or ``sigma`` is not real.
    ValueError
        If ``theta`` is not finite or ``sigma`` is not finite and > 0.

    Examples
    --------
    >>> spiked_overlap([2.0, 0.5])
    array([0.75, 0.  ])
    """
    sigma = positive_scalar("sigma", sigma)
    theta = _thetas(theta)
    safe = np.where(theta == 0, 1.0, theta)
    return scalar_or_array(np.where(np.abs(theta) > sigma, 1.0 - sigma**2 / safe**2, 0.0))


def spiked_outlier_sd(
    theta: ArrayLike, sigma: float, n: float, beta: int = 1
) -> float | np.ndarray:
    r"""Finite-n standard deviation of the outlier, √((2/β)σ²(1 − σ²/θ²)/n), for |θ| > σ.

    √n(λ − (θ + σ²/θ)) → N(0, (2/β)σ²(1 − σ²/θ²)) for Gaussian (GOE β = 1, GUE β = 2)
    noise and any unit v (Benaych-Georges, Guionnet & Maida 2011); at n = 400, θ = 2σ,
    1000 GOE draws give √n·sd = 1.217 against 1.225. The bias is O(1/n), so
    |λ − (θ + σ²/θ)| < 5 sd is a test tolerance that fails only on a real error (keep
    |θ − σ| ≥ 3σn^(−1/3), outside the critical window where neither limit holds).

    Parameters
    ----------
    theta : array_like
        Spike strength(s) θ with |θ| > σ.
    sigma : float
        Scale σ > 0 of the semicircle.
    n : float
        Matrix size n > 0.
    beta : int
        1 (real noise) or 2 (complex noise).

    Returns
    -------
    float or numpy.ndarray
        The standard deviation(s), shaped like ``theta``.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If ``beta`` is not 1 or 2, ``sigma`` or ``n`` is not finite and > 0, or some
        |θ| ≤ σ (no outlier).

    Examples
    --------
    >>> round(spiked_outlier_sd(2.0, 1.0, 400) * 20, 4)  # √n·sd = √(2·3/4)
    1.2247
    """
    sigma = positive_scalar("sigma", sigma)
    n = positive_scalar("n (matrix size)", n)
    if beta not in (1, 2) or isinstance(beta, bool):
        raise ValueError(f"beta must be 1 or 2, got {beta!r}")
    theta = _thetas(theta)
    if np.any(np.abs(theta) <= sigma):
        raise ValueError(
            f"theta must satisfy |theta| > sigma = {sigma:g} (above the BBP threshold)"
        )
    return scalar_or_array(np.sqrt(2.0 / beta * sigma**2 * (1 - sigma**2 / theta**2) / n))


class MPAdditiveOutlier(NamedTuple):
    """Result of :func:`mp_additive_outlier`, each field shaped like ``theta``.

    Attributes
    ----------
    location : float or numpy.ndarray
        Limiting eigenvalue (the nearer edge, or the atom at 0, without an outlier).
    overlap : float or numpy.ndarray
        Limiting squared overlap |⟨u, v⟩|² (0 without an outlier).
    """

    location: float | np.ndarray
    overlap: float | np.ndarray


def mp_additive_outlier(theta: ArrayLike, q: float, sigma: float = 1.0) -> MPAdditiveOutlier:
    r"""Additive spike on a Marchenko–Pastur bulk: M = W + θvvᵀ, W = XXᵀ/n.

    With G the MP transform (:func:`rmtlr.rmt.laws.mp_stieltjes`), the R-transform is
    R(g) = σ²/(1 − qσ²g), so the Benaych-Georges–Nadakuditi (2011) recipe gives in closed
    form

    - thresholds θ_c± = σ²(q ± √q) = 1/G(λ±); for q ≥ 1 every θ < 0 gives an outlier below
      the atom at 0;
    - location ρ = θ + R(1/θ) = θ + σ²θ/(θ − qσ²);
    - squared overlap −1/(θ²G′(ρ)) = −D/(θ − qσ²), D = ρ(2qσ²/θ − 1) + σ²(1 − q), from
      differentiating qσ²zG² − (z − σ²(1 − q))G + 1 = 0 at G = 1/θ.

    Below threshold the location is the nearer edge (λ₊ for θ ≥ 0, λ₋ or the atom at 0 for
    θ < 0) and the overlap is 0. Simulation (p = 1000, q = 0.5, θ = 2): eigenvalue 3.3333,
    overlap 0.7756, against 3.3333 and 0.7778.

    Parameters
    ----------
    theta : array_like
        Spike strength(s) θ, any sign.
    q : float
        Ratio q = p/n > 0 of the Wishart matrix.
    sigma : float
        Entry standard deviation σ > 0 of X.

    Returns
    -------
    MPAdditiveOutlier
        ``(location, overlap)``, each shaped like ``theta``.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If ``theta`` is not finite, or ``q`` or ``sigma`` is not finite and > 0.

    Examples
    --------
    >>> res = mp_additive_outlier(2.0, 0.5)
    >>> round(res.location, 4), round(res.overlap, 4)
    (3.3333, 0.7778)
    """
    q = positive_scalar("q (ratio p/n)", q)
    s2 = positive_scalar("sigma", sigma) ** 2
    theta = _thetas(theta)
    lo, hi = mp_edges(q, np.sqrt(s2))
    upper_c = s2 * (q + np.sqrt(q))
    lower_c = s2 * (q - np.sqrt(q)) if q < 1 else 0.0
    lower_edge = lo if q < 1 else 0.0
    out = np.where(theta >= 0, theta > upper_c, theta < lower_c)
    safe = np.where(out, theta, 2 * upper_c + 1.0)
    ratio = 1.0 + s2 / (safe - q * s2)  # ρ/θ, written without dividing by a tiny θ < 0
    rho = safe * ratio
    d = 2 * q * s2 * ratio - rho + s2 * (1 - q)
    ov = -d / (safe - q * s2)
    location = np.where(out, rho, np.where(theta >= 0, hi, lower_edge))
    return MPAdditiveOutlier(scalar_or_array(location), scalar_or_array(np.where(out, ov, 0.0)))


class BGNOutliers(NamedTuple):
    """Result of :func:`outliers_from_stieltjes`, one entry per spike.

    Attributes
    ----------
    location : numpy.ndarray
        Limiting eigenvalue ρ (the edge when there is no outlier).
    overlap : numpy.ndarray
        Limiting squared overlap |⟨u, v⟩|² (0 when there is no outlier).
    is_outlier : numpy.ndarray
        Whether θ is beyond its threshold.
    thresholds : tuple of float
        (θ_c⁻, θ_c⁺) = (1/G(a⁻), 1/G(b⁺)); θ_c⁻ is NaN when no lower edge was given.
    """

    location: np.ndarray
    overlap: np.ndarray
    is_outlier: np.ndarray
    thresholds: tuple[float, float]


def _edge_value(stieltjes: Callable, edge: float, direction: float, scale: float) -> float:
    """G at the edge, approached from outside.

    ±inf when G diverges there (an atom, or an empirical transform whose edge is an
    eigenvalue).
    """
    with np.errstate(all="ignore"):
        try:
            g = complex(stieltjes(edge))
        except (ZeroDivisionError, ValueError):
            g = complex(np.nan)
    if np.isfinite(g.real):
        return g.real
    g_near = complex(stieltjes(edge + direction * 1e-12 * scale)).real
    return np.inf * np.sign(g_near)


def _real_g(stieltjes: Callable, x: float) -> float:
    g = complex(stieltjes(x))
    if not np.isfinite(g.real) or abs(g.imag) > 1e-8 * max(1.0, abs(g.real)):
        raise ValueError(
            f"stieltjes must return a finite real value outside the support; got {g} at {x:g}"
        )
    return g.real


def outliers_from_stieltjes(
    thetas: ArrayLike,
    stieltjes: Callable[[float], complex],
    edge: float | tuple[float, float],
    *,
    rel_step: float = 1e-6,
    xtol: float = 1e-13,
) -> BGNOutliers:
    r"""Apply the general Benaych-Georges–Nadakuditi (2011) recipe to finite-rank spikes.

    For M = W + Σ θ_i v_i v_iᵀ (orthonormal v_i, W with limiting law μ on [a, b] and
    Stieltjes transform G, any noise law) each θ_i acts separately:

    - threshold θ_c⁺ = 1/G(b⁺) (θ_c⁻ = 1/G(a⁻) < 0 for negative spikes);
    - location: the root ρ of G(ρ) = 1/θ on (b, ∞) (on (−∞, a) for θ < 0), found by
      ``brentq`` on the bracket (b, b + 2θ), widened if needed (G is decreasing there and
      G(b + 2θ) ≤ 1/(2θ) for a probability law living below b);
    - squared overlap −1/(θ²G′(ρ)), with G′ by central differences of step
      ``rel_step``·max(1, |ρ|), or 1e−3·|ρ − edge| when ρ is closer to the edge.

    Parameters
    ----------
    thetas : array_like
        Spike strengths θ_i (scalar or 1-d; negative ones need a lower edge).
    stieltjes : callable
        x ↦ G(x) for real x outside the support, e.g.
        ``lambda x: semicircle_stieltjes(x, sigma)``, an empirical transform
        ``lambda x: empirical_stieltjes(eigs, x)`` of a noise sample, or a numerical
        solver's.
    edge : float or tuple of float
        Upper edge b, or a pair (a, b) of lower and upper edges.
    rel_step : float
        Relative finite-difference step for G′, in (0, 1e−2).
    xtol : float
        Root tolerance, relative to the spectrum's scale.

    Returns
    -------
    BGNOutliers
        ``(location, overlap, is_outlier, thresholds)``.

    Raises
    ------
    TypeError
        If ``stieltjes`` is not callable or ``thetas``/``edge`` is not real.
    ValueError
        If ``thetas`` is not finite or not 1-d, ``edge`` is malformed, negative thetas
        come without a lower edge, ``rel_step`` is out of range, or ``stieltjes`` returns
        a non-real value outside the support.

    Examples
    --------
    >>> from rmtlr.rmt.laws import semicircle_stieltjes
    >>> res = outliers_from_stieltjes([2.0, 0.5], semicircle_stieltjes, 2.0)
    >>> res.location.round(6), res.overlap.round(6), res.thresholds[1]
    (array([2.5, 2. ]), array([0.75, 0.  ]), 1.0)
    """
    theta = np.atleast_1d(_thetas(thetas))
    if theta.ndim != 1:
        raise ValueError("thetas must be a scalar or a 1-d sequence")
    if not callable(stieltjes):
        raise TypeError(f"stieltjes must be a callable x -> G(x), got {stieltjes!r}")
    edges = np.atleast_1d(finite("edge", edge))
    if edges.size == 1:
        lower, upper = np.nan, float(edges[0])
    elif edges.size == 2:
        lower, upper = map(float, edges)
        if not lower < upper:
            raise ValueError(f"edge must be (lower, upper) with lower < upper, got {tuple(edges)}")
    else:
        raise ValueError(f"edge must be the upper edge or a (lower, upper) pair, got {edge!r}")
    if np.any(theta < 0) and np.isnan(lower):
        raise ValueError(
            "negative thetas need edge=(lower, upper): they separate below the lower edge"
        )
    if not 0 < rel_step < 1e-2:
        raise ValueError(f"rel_step must be in (0, 1e-2), got {rel_step!r}")
    scale = max(1.0, abs(upper), abs(lower) if np.isfinite(lower) else 0.0)

    g_up = _edge_value(stieltjes, upper, +1.0, scale)
    thr_up = 1.0 / g_up if g_up != 0 else np.inf
    if np.isnan(lower):
        thr_lo = np.nan
    else:
        g_lo = _edge_value(stieltjes, lower, -1.0, scale)
        thr_lo = 1.0 / g_lo if g_lo != 0 else -np.inf

    loc = np.empty_like(theta)
    ov = np.zeros_like(theta)
    is_out = np.where(theta >= 0, theta > thr_up, theta < thr_lo)
    for i, th in enumerate(theta):
        e, sgn = (upper, 1.0) if th >= 0 else (lower, -1.0)
        if not is_out[i]:
            loc[i] = e
            continue

        def f(x: float, th: float = th) -> float:
            return _real_g(stieltjes, x) - 1.0 / th

        near = e + sgn * 1e-12 * scale
        far = e + sgn * 2.0 * abs(th)
        for _ in range(60):  # G need not be normalised: widen the bracket if required
            if f(far) * sgn < 0:
                break
            far = e + 2.0 * (far - e)
        else:
            raise ValueError(f"no root of G(x) = 1/theta found beyond the edge for theta={th:g}")
        a_, b_ = (near, far) if sgn > 0 else (far, near)
        rho = brentq(f, a_, b_, xtol=xtol * scale, rtol=4 * np.finfo(float).eps)
        # G varies on the scale of the distance to the edge, so the step must be small
        # against it too (truncation error ~ (h/|ρ − edge|)²).
        h = min(rel_step * max(1.0, abs(rho)), 1e-3 * abs(rho - e))
        g_prime = (_real_g(stieltjes, rho + h) - _real_g(stieltjes, rho - h)) / (2 * h)
        loc[i] = rho
        ov[i] = -1.0 / (th**2 * g_prime)
    return BGNOutliers(loc, ov, is_out, (float(thr_lo), float(thr_up)))
