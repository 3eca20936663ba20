r"""Learning-rate laws as a function of batch size (Granziol, Zohren & Roberts 2022, Secs. 10–11).

- SGD (Eq. 24 with Theorem 4): α_max = 2/λ'_1 with λ'_1 = λ_1 + (P/𝔟)σ_ε²/λ_1 — linear in
  B while the noise dominates, saturating at 2/λ_1 for large B.
- Adam (Eqs. 28–31): along bulk-edge directions α_0 < sqrt(𝔟)(η + δ)/(sqrt(P)σ_ε) —
  square root in B.

The quantities λ_1 (top full-data Hessian eigenvalue), P (parameters) and σ_ε
(root-mean-square per-entry standard deviation of the per-sample Hessian) are what
:mod:`rmtlr.curvature` measures on a network. Every function taking several of them takes
them by keyword, so that P and N cannot be swapped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from rmtlr.rmt.batch import batch_noise_scale, batch_outlier, effective_batch_size
from rmtlr.rmt.validation import (
    finite,
    nonnegative,
    positive,
    real,
    scalar_or_array,
    whole_number,
)

__all__ = [
    "PowerLawFit",
    "adam_max_lr",
    "batch_outlier",
    "crossover_batch_size",
    "effective_batch_size",
    "fit_power_law",
    "implied_sigma_eps",
    "linear_rule",
    "min_damping",
    "sgd_max_lr",
    "sqrt_rule",
]

_SIGMA_EPS = "sigma_eps (per-entry Hessian noise σ_ε)"


def sgd_max_lr(
    B: ArrayLike,
    *,
    N: ArrayLike,
    lam1: ArrayLike,
    P: ArrayLike,
    sigma_eps: ArrayLike,
    threshold: bool = True,
) -> float | np.ndarray:
    r"""Largest stable SGD learning rate at batch size B (Eq. 24 with Theorem 4).

    .. math:: α_{max}(B) = \frac{2}{λ'_1},\qquad
              λ'_1 = λ_1 + \frac{P σ_ε^2}{𝔟 λ_1}\ \ (λ_1 > \sqrt{P/𝔟}\,σ_ε),\ \
              λ'_1 = 2\sqrt{P/𝔟}\,σ_ε\ \ \text{otherwise.}

    With ``threshold=True`` (Theorem 4 as stated) a full-data outlier below the BBP
    threshold is swallowed by the noise bulk and λ'_1 is the bulk edge, so for very small B
    α_max = 1/(sqrt(P/𝔟)σ_ε) ∝ sqrt(B). With ``threshold=False`` the outlier formula is
    used for every B, which is how the paper reads Sec. 10.1: for small B the noise term
    dominates and α_max ≈ 2𝔟λ_1/(Pσ_ε²) ∝ B (linear scaling). Both saturate at 2/λ_1 for
    large B (and B → N). Within Theorem 4's own range (λ_1 > sqrt(P/𝔟)σ_ε) the shift is at
    most λ_1, so the linear regime of the paper's reading is an extrapolation.

    Parameters
    ----------
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Training-set size, a whole number, or ``numpy.inf`` for fresh samples (Remark 6).
    lam1 : array_like
        Top eigenvalue λ_1 > 0 of the full-data Hessian.
    P : array_like
        Number of parameters, a whole number ≥ 1.
    sigma_eps : array_like
        Per-entry Hessian noise σ_ε ≥ 0.
    threshold : bool
        Apply Theorem 4's BBP threshold (default) or the outlier formula throughout.

    Returns
    -------
    float or numpy.ndarray
        α_max, broadcast over the arguments.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> # σ = sqrt(10⁴/100)·0.02 = 0.2, λ'_1 = 1 + 0.2² = 1.04
    >>> round(sgd_max_lr(100, N=float("inf"), lam1=1.0, P=10_000, sigma_eps=0.02), 6)
    1.923077
    >>> sgd_max_lr(50_000, N=50_000, lam1=1.0, P=10_000, sigma_eps=0.02)  # B = N: 2/λ_1
    2.0
    """
    lam1 = positive("lam1 (top Hessian eigenvalue)", lam1)
    sigma_eps = nonnegative(_SIGMA_EPS, sigma_eps)
    if threshold:
        top = batch_outlier(lam1, P=P, B=B, N=N, sigma_eps=sigma_eps)
    else:
        s = np.asarray(batch_noise_scale(P=P, B=B, N=N, sigma_eps=sigma_eps), dtype=float)
        top = lam1 + s**2 / lam1
    return scalar_or_array(2.0 / np.asarray(top, dtype=float))


def implied_sigma_eps(
    lam1: ArrayLike,
    lam1_batch: ArrayLike,
    *,
    P: ArrayLike,
    B: ArrayLike,
    N: ArrayLike,
    threshold: bool = True,
) -> float | np.ndarray:
    r"""Invert Theorem 4: the σ_ε that moves a full-data λ_1 to a measured batch λ'_1.

    With s = sqrt(P/𝔟)σ_ε: if λ'_1 < 2λ_1 the top eigenvalue is an outlier and
    s² = (λ'_1 − λ_1)λ_1; if λ'_1 ≥ 2λ_1 it can only be the bulk edge, s = λ'_1/2
    (``threshold=False`` always uses the outlier branch, the paper's reading of Sec. 10.1).
    Returns σ_ε = s/sqrt(P/𝔟).

    Parameters
    ----------
    lam1 : array_like
        Full-data top eigenvalue λ_1 > 0.
    lam1_batch : array_like
        Measured batch top eigenvalue λ'_1 ≥ λ_1.
    P : array_like
        Number of parameters, a whole number ≥ 1.
    B : array_like
        Batch size(s) of the measurement, 0 < B < N.
    N : array_like
        Training-set size, a whole number, or ``numpy.inf``.
    threshold : bool
        Apply Theorem 4's BBP threshold (default) or the outlier formula throughout.

    Returns
    -------
    float or numpy.ndarray
        σ_ε.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range or λ'_1 < λ_1.

    Examples
    --------
    >>> # the inverse of batch_outlier(1.0, P=10_000, B=100, N=inf, sigma_eps=0.02) = 1.04
    >>> round(implied_sigma_eps(1.0, 1.04, P=10_000, B=100, N=float("inf")), 12)
    0.02
    """
    lam1 = positive("lam1 (full-data top eigenvalue)", lam1)
    lam1_batch = positive("lam1_batch (batch top eigenvalue)", lam1_batch)
    P = whole_number("P (number of parameters)", P)
    if np.any(lam1_batch < lam1):
        raise ValueError("lam1_batch must be >= lam1: noise can only push the top eigenvalue out")
    eff = np.asarray(effective_batch_size(B, N), dtype=float)
    s2 = (lam1_batch - lam1) * lam1
    if threshold:
        s2 = np.where(lam1_batch >= 2 * lam1, (lam1_batch / 2) ** 2, s2)
    return scalar_or_array(np.sqrt(s2 * eff / P))


def crossover_batch_size(
    lam1: ArrayLike, *, P: ArrayLike, sigma_eps: ArrayLike, N: ArrayLike = np.inf
) -> float | np.ndarray:
    r"""Batch size where SGD's linear regime meets saturation: 𝔟* = Pσ_ε²/λ_1².

    At 𝔟 = 𝔟* the noise shift Pσ_ε²/(𝔟λ_1) equals λ_1, so α_max is half its B → ∞
    value. This is a derivation from Theorem 4, not printed in the paper. Returned as a
    batch size B* with 1/B* = 1/𝔟* + 1/N.

    Parameters
    ----------
    lam1 : array_like
        Top eigenvalue λ_1 > 0 of the full-data Hessian.
    P : array_like
        Number of parameters, a whole number ≥ 1.
    sigma_eps : array_like
        Per-entry Hessian noise σ_ε > 0.
    N : array_like
        Training-set size, a whole number, or ``numpy.inf`` (default).

    Returns
    -------
    float or numpy.ndarray
        B*.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> round(crossover_batch_size(1.0, P=10_000, sigma_eps=0.02), 12)  # 10⁴·0.02²/1²
    4.0
    """
    lam1 = positive("lam1 (top Hessian eigenvalue)", lam1)
    P = whole_number("P (number of parameters)", P)
    sigma_eps = positive(_SIGMA_EPS, sigma_eps)
    N = whole_number("N (number of samples)", N, allow_inf=True)
    eff = P * sigma_eps**2 / lam1**2
    return scalar_or_array(1.0 / (1.0 / eff + 1.0 / N))


def adam_max_lr(
    B: ArrayLike,
    *,
    N: ArrayLike,
    P: ArrayLike,
    sigma_eps: ArrayLike,
    delta: ArrayLike,
    eta_edge: ArrayLike = 0.0,
    lam1: ArrayLike | None = None,
    eta_top: ArrayLike = 0.0,
) -> float | np.ndarray:
    r"""Largest stable Adam learning rate at batch size B (Eqs. 28–31).

    Adam preconditions direction i by 1/(η_i + δ) (η_i: the adaptive second-moment scale,
    δ: the damping ``eps``). Stability along a direction with batch curvature λ needs
    αλ/(η_i + δ) < 2 (Eq. 28). Along bulk-edge directions λ = 2 sqrt(P/𝔟)σ_ε, giving
    Eq. 31:

    .. math:: α_0 < \frac{\sqrt{𝔟}\,(η_{edge} + δ)}{\sqrt{P}\,σ_ε} \;\propto\; \sqrt{B}.

    If the top full-data eigenvalue ``lam1`` is given, the outlier constraint
    α_0 < 2(η_top + δ)/λ'_1 (Theorem 4) is applied as well and the smaller bound returned.
    For large δ the outlier constraint binds (λ'_1 ≥ 2 sqrt(P/𝔟)σ_ε always), so Adam
    becomes SGD with rate α/δ and the scaling turns linear again, as the paper notes.

    Parameters
    ----------
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Training-set size, a whole number, or ``numpy.inf``.
    P : array_like
        Number of parameters, a whole number ≥ 1.
    sigma_eps : array_like
        Per-entry Hessian noise σ_ε > 0.
    delta : array_like
        Adam's damping δ ≥ 0 (``eps`` in PyTorch).
    eta_edge : array_like
        Preconditioner scale η ≥ 0 along the bulk-edge directions.
    lam1 : array_like, optional
        Top full-data eigenvalue λ_1 > 0; adds the outlier constraint.
    eta_top : array_like
        Preconditioner scale η ≥ 0 along the top eigenvector.

    Returns
    -------
    float or numpy.ndarray
        The largest stable α_0.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range or δ + η_edge = 0 (no rate is stable).

    Examples
    --------
    >>> # sqrt(100)·(0.01 + 0)/(sqrt(10⁴)·0.02): quadrupling B doubles it
    >>> kw = dict(N=float("inf"), P=10_000, sigma_eps=0.02, delta=0.0, eta_edge=0.01)
    >>> round(adam_max_lr(100, **kw), 12), round(adam_max_lr(400, **kw), 12)
    (0.05, 0.1)
    """
    sigma_eps = positive(_SIGMA_EPS, sigma_eps)
    delta = nonnegative("delta (Adam damping)", delta)
    eta_edge = nonnegative("eta_edge (preconditioner scale)", eta_edge)
    eta_top = nonnegative("eta_top (preconditioner scale)", eta_top)
    if np.any(delta + eta_edge <= 0):
        raise ValueError("delta + eta_edge must be > 0 (otherwise no rate is stable)")
    s = np.asarray(batch_noise_scale(P=P, B=B, N=N, sigma_eps=sigma_eps), dtype=float)
    with np.errstate(divide="ignore"):
        bound = np.where(s > 0, (eta_edge + delta) / np.where(s > 0, s, 1.0), np.inf)
    if lam1 is not None:
        top = np.asarray(
            batch_outlier(
                positive("lam1 (top Hessian eigenvalue)", lam1),
                P=P, B=B, N=N, sigma_eps=sigma_eps,
            ),
            dtype=float,
        )
        bound = np.minimum(bound, 2.0 * (eta_top + delta) / top)
    return scalar_or_array(bound)


def min_damping(
    alpha0: ArrayLike, lam_batch: ArrayLike, eta: ArrayLike = 0.0
) -> float | np.ndarray:
    r"""Smallest Adam damping δ that keeps a direction stable (from Eq. 28).

    .. math:: δ > \frac{α_0}{2} λ_i^{batch} - η_i .

    With λ_i^batch ≈ Pσ_ε²/(𝔟λ_i) for noise-dominated directions this gives
    δ_min ∝ α_0/B (a derivation; the relation appears only in the paper's earlier arXiv
    versions). Returned clipped at 0 (negative curvature needs no damping).

    Parameters
    ----------
    alpha0 : array_like
        Learning rate α_0 > 0.
    lam_batch : array_like
        Batch Hessian eigenvalue(s) along the direction, finite.
    eta : array_like
        Preconditioner scale η ≥ 0 along the direction.

    Returns
    -------
    float or numpy.ndarray
        δ_min ≥ 0.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> min_damping(0.01, 300.0, 0.5)  # 0.01·300/2 − 0.5
    1.0
    """
    alpha0 = positive("alpha0 (learning rate)", alpha0)
    lam_batch = finite("lam_batch (batch Hessian eigenvalue)", lam_batch)
    eta = nonnegative("eta (preconditioner scale)", eta)
    return scalar_or_array(np.maximum(0.0, 0.5 * alpha0 * lam_batch - eta))


def linear_rule(B: ArrayLike, alpha0: ArrayLike, B0: ArrayLike = 128) -> float | np.ndarray:
    r"""Linear scaling rule α(B) = α_0·B/B_0 (the SGD law, Sec. 10.1).

    Parameters
    ----------
    B : array_like
        Batch size(s) > 0.
    alpha0 : array_like
        Learning rate α_0 > 0 at the reference batch size.
    B0 : array_like
        Reference batch size B_0 > 0.

    Returns
    -------
    float or numpy.ndarray
        α(B).

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is not finite and > 0.

    Examples
    --------
    >>> linear_rule(256, 0.1, 128)
    0.2
    """
    B = positive("B (batch size)", B)
    alpha0 = positive("alpha0 (learning rate)", alpha0)
    B0 = positive("B0 (reference batch size)", B0)
    return scalar_or_array(alpha0 * B / B0)


def sqrt_rule(B: ArrayLike, alpha0: ArrayLike, B0: ArrayLike = 128) -> float | np.ndarray:
    r"""Square-root scaling rule α(B) = α_0·sqrt(B/B_0) (the Adam law, Eq. 31).

    Parameters
    ----------
    B : array_like
        Batch size(s) > 0.
    alpha0 : array_like
        Learning rate α_0 > 0 at the reference batch size.
    B0 : array_like
        Reference batch size B_0 > 0.

    Returns
    -------
    float or numpy.ndarray
        α(B).

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is not finite and > 0.

    Examples
    --------
    >>> sqrt_rule(512, 0.0004, 128)
    0.0008
    """
    B = positive("B (batch size)", B)
    alpha0 = positive("alpha0 (learning rate)", alpha0)
    B0 = positive("B0 (reference batch size)", B0)
    return scalar_or_array(alpha0 * np.sqrt(B / B0))


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`: lr ≈ prefactor·B**exponent.

    Attributes
    ----------
    exponent : float
        Fitted exponent k.
    prefactor : float
        Fitted prefactor c.
    ci_low : float
        Lower end of the confidence interval of k.
    ci_high : float
        Upper end of the confidence interval of k.
    stderr : float
        Standard error of k.
    n : int
        Number of points.
    confidence : float
        Confidence level of the interval.
    """

    exponent: float
    prefactor: float
    ci_low: float
    ci_high: float
    stderr: float
    n: int
    confidence: float

    def __str__(self) -> str:
        """One line: the exponent with its interval and the number of points."""
        pct = round(100 * self.confidence)
        return (f"exponent {self.exponent:.2f} ({pct}% CI {self.ci_low:.2f} to "
                f"{self.ci_high:.2f}, n={self.n})")


def fit_power_law(B: ArrayLike, lr: ArrayLike, *, confidence: float = 0.95) -> PowerLawFit:
    r"""Fit lr = c·B^k by least squares on log lr = log c + k log B.

    The interval is the Student-t interval of the slope with n − 2 degrees of freedom
    (needs at least three points). Use it to compare a measured scaling exponent with
    the laws k = 1 (SGD) and k = 1/2 (Adam).

    Parameters
    ----------
    B : array_like
        Batch sizes > 0.
    lr : array_like
        Learning rates > 0, one per batch size.
    confidence : float
        Confidence level of the interval, in (0, 1).

    Returns
    -------
    PowerLawFit
        Exponent, prefactor, interval, standard error, n and confidence.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If fewer than 3 points are given, the lengths differ, a value is not finite and
        > 0, or ``confidence`` is not in (0, 1).

    Examples
    --------
    >>> print(fit_power_law([32, 64, 128, 256], [0.01, 0.014, 0.02, 0.028]))
    exponent 0.50 (95% CI 0.48 to 0.51, n=4)
    """
    B = positive("B (batch sizes)", B).ravel()
    lr = positive("lr (learning rates)", lr).ravel()
    if B.shape != lr.shape:
        raise ValueError(f"B and lr must have the same length, got {B.size} and {lr.size}")
    if B.size < 3:
        raise ValueError(f"fit_power_law needs at least 3 points, got {B.size}")
    confidence = float(real("confidence", confidence))
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x, y = np.log(B), np.log(lr)
    res = stats.linregress(x, y)
    half = stats.t.ppf(0.5 + confidence / 2, B.size - 2) * res.stderr
    return PowerLawFit(
        exponent=float(res.slope),
        prefactor=float(np.exp(res.intercept)),
        ci_low=float(res.slope - half),
        ci_high=float(res.slope + half),
        stderr=float(res.stderr),
        n=int(B.size),
        confidence=float(confidence),
    )
