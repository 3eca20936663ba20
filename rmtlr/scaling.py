"""Learning-rate laws as a function of batch size (Granziol, Zohren & Roberts 2022, Secs. 10–11).

- SGD (Eq. 24 with Theorem 4): α_max = 2/λ'_1 with λ'_1 = λ_1 + (P/𝔟)σ²/λ_1 — linear in B
  while the noise dominates, saturating at 2/λ_1 for large B.
- Adam (Eqs. 28–31): along bulk-edge directions α_0 < sqrt(𝔟)(η+δ)/(sqrt(P)σ) — square
  root in B.

The quantities λ_1 (top full-data Hessian eigenvalue), P (parameters) and σ (root-mean-square
per-entry standard deviation of the per-sample Hessian) are what :mod:`rmtlr.curvature`
measures on a network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from rmtlr.rmt.batch import (
    _as_positive,
    _out,
    batch_noise_scale,
    batch_outlier,
    effective_batch_size,
)


def _finite(name: str, value, *, nonneg: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if np.any(~np.isfinite(arr)) or (nonneg and np.any(arr < 0)):
        raise ValueError(f"{name} must be finite{' and >= 0' if nonneg else ''}, got {value!r}")
    return arr


__all__ = [
    "PowerLawFit",
    "adam_max_lr",
    "batch_outlier",
    "crossover_batch_size",
    "effective_batch_size",
    "fit_power_law",
    "implied_sigma",
    "linear_rule",
    "min_damping",
    "sgd_max_lr",
    "sqrt_rule",
]


def sgd_max_lr(B, N, lam1, P, sigma, threshold=True):
    r"""Largest stable SGD learning rate at batch size B (Eq. 24 with Theorem 4).

    .. math:: α_{max}(B) = \frac{2}{λ'_1},\qquad
              λ'_1 = λ_1 + \frac{P σ^2}{𝔟 λ_1}\ \ (λ_1 > \sqrt{P/𝔟}σ),\ \ 
              λ'_1 = 2\sqrt{P/𝔟}\,σ\ \ \text{otherwise.}

    With ``threshold=True`` (Theorem 4 as stated) a full-data outlier below the BBP
    threshold is swallowed by the noise bulk and λ'_1 is the bulk edge, so for very small B
    α_max = 1/(sqrt(P/𝔟)σ) ∝ sqrt(B). With ``threshold=False`` the outlier formula is used
    for every B, which is how the paper reads Sec. 10.1: for small B the noise term dominates
    and α_max ≈ 2𝔟λ_1/(Pσ²) ∝ B (linear scaling). Both saturate at 2/λ_1 for large B
    (and B → N). Note that within Theorem 4's own range (λ_1 > sqrt(P/𝔟)σ) the shift is at
    most λ_1, so the linear regime of the paper's reading is an extrapolation.

    Parameters
    ----------
    B: batch size(s), 0 < B ≤ N.
    N: training-set size (``numpy.inf`` for the fresh-sample model of Remark 6).
    lam1: top eigenvalue of the full-data Hessian, > 0.
    P: number of parameters.
    sigma: per-entry Hessian standard deviation σ_ε (≥ 0).
    threshold: apply Theorem 4's BBP threshold (default) or the outlier formula throughout.
    """
    lam1 = _as_positive("lam1 (top Hessian eigenvalue)", lam1)
    # Checked here so that the error names this function's argument, not batch.py's sigma_eps.
    sigma = _finite("sigma (per-entry Hessian noise σ_ε)", sigma, nonneg=True)
    if threshold:
        top = batch_outlier(lam1, P, B, N, sigma)
    else:
        s = np.asarray(batch_noise_scale(P, B, N, sigma), dtype=float)
        top = lam1 + s**2 / lam1
    return _out(2.0 / np.asarray(top, dtype=float))


def implied_sigma(lam1, lam1_batch, P, B, N, threshold=True):
    r"""Invert Theorem 4: the σ_ε that moves a full-data λ_1 to a measured batch λ'_1.

    With s = sqrt(P/𝔟)σ_ε: if λ'_1 < 2λ_1 the top eigenvalue is an outlier and
    s² = (λ'_1 − λ_1)λ_1; if λ'_1 ≥ 2λ_1 it can only be the bulk edge, s = λ'_1/2
    (``threshold=False`` always uses the outlier branch, the paper's reading of Sec. 10.1).
    Returns σ_ε = s/sqrt(P/𝔟).
    """
    lam1 = _as_positive("lam1 (full-data top eigenvalue)", lam1)
    lam1_batch = _as_positive("lam1_batch (batch top eigenvalue)", lam1_batch)
    P = _as_positive("P (number of parameters)", P)
    if np.any(lam1_batch < lam1):
        raise ValueError("lam1_batch must be >= lam1: noise can only push the top eigenvalue out")
    eff = np.asarray(effective_batch_size(B, N), dtype=float)
    s2 = (lam1_batch - lam1) * lam1
    if threshold:
        s2 = np.where(lam1_batch >= 2 * lam1, (lam1_batch / 2) ** 2, s2)
    return _out(np.sqrt(s2 * eff / P))


def crossover_batch_size(lam1, P, sigma, N=np.inf):
    r"""Batch size where SGD's linear regime meets saturation: 𝔟* = Pσ²/λ_1².

    At 𝔟 = 𝔟* the noise shift Pσ²/(𝔟λ_1) equals λ_1, so α_max is half its B → ∞ value.
    This is a derivation from Theorem 4, not printed in the paper. Returned as a batch
    size B* with 1/B* = 1/𝔟* + 1/N.
    """
    lam1 = _as_positive("lam1 (top Hessian eigenvalue)", lam1)
    P = _as_positive("P (number of parameters)", P)
    sigma = _as_positive("sigma", sigma)
    N = _as_positive("N (number of samples)", N, allow_inf=True)
    eff = P * sigma**2 / lam1**2
    return _out(1.0 / (1.0 / eff + 1.0 / N))


def adam_max_lr(B, N, P, sigma, delta, eta_edge=0.0, lam1=None, eta_top=0.0):
    r"""Largest stable Adam learning rate at batch size B (Eqs. 28–31).

    Adam preconditions direction i by 1/(η_i + δ) (η_i: the adaptive second-moment scale,
    δ: the damping ``eps``). Stability along a direction with batch curvature λ needs
    α λ /(η_i + δ) < 2 (Eq. 28). Along bulk-edge directions λ = 2 sqrt(P/𝔟)σ, giving
    Eq. 31:

    .. math:: α_0 < \frac{\sqrt{𝔟}\,(η_{edge} + δ)}{\sqrt{P}\,σ} \;\propto\; \sqrt{B}.

    If the top full-data eigenvalue ``lam1`` is given, the outlier constraint
    α_0 < 2(η_top + δ)/λ'_1 (Theorem 4) is applied as well and the smaller bound returned.
    For large δ the outlier constraint binds (λ'_1 ≥ 2 sqrt(P/𝔟)σ always), so Adam
    becomes SGD with rate α/δ and the scaling turns linear again, as the paper notes.

    Parameters
    ----------
    B, N: batch size and training-set size.
    P: number of parameters. sigma: per-entry Hessian standard deviation σ_ε (> 0).
    delta: Adam's damping ε (≥ 0). eta_edge, eta_top: preconditioner scales η (≥ 0).
    lam1: optional top full-data eigenvalue.
    """
    _as_positive("sigma", sigma)
    for name, v in (("delta", delta), ("eta_edge", eta_edge), ("eta_top", eta_top)):
        if np.any(np.asarray(v, dtype=float) < 0) or np.any(np.isnan(np.asarray(v, dtype=float))):
            raise ValueError(f"{name} must be >= 0, got {v!r}")
    if np.any(np.asarray(delta) + np.asarray(eta_edge) <= 0):
        raise ValueError("delta + eta_edge must be > 0 (otherwise no rate is stable)")
    s = np.asarray(batch_noise_scale(P, B, N, sigma), dtype=float)
    with np.errstate(divide="ignore"):
        bound = np.where(s > 0, (np.asarray(eta_edge) + delta) / np.where(s > 0, s, 1.0), np.inf)
    if lam1 is not None:
        top = np.asarray(batch_outlier(lam1, P, B, N, sigma), dtype=float)
        bound = np.minimum(bound, 2.0 * (np.asarray(eta_top) + delta) / top)
    return _out(bound)


def min_damping(alpha0, lam_batch, eta=0.0):
    r"""Smallest Adam damping δ that keeps a direction stable (from Eq. 28).

    .. math:: δ > \frac{α_0}{2} λ_i^{batch} - η_i .

    With λ_i^batch ≈ Pσ²/(𝔟λ_i) for noise-dominated directions this gives δ_min ∝ α_0/B
    (a derivation; the relation appears only in the paper's earlier arXiv versions).
    Returned clipped at 0. ``lam_batch`` must be finite (negative curvature needs no
    damping), ``eta`` finite and >= 0.
    """
    alpha0 = _as_positive("alpha0 (learning rate)", alpha0)
    lam_batch = _finite("lam_batch (batch Hessian eigenvalue)", lam_batch)
    eta = _finite("eta (preconditioner scale)", eta, nonneg=True)
    return _out(np.maximum(0.0, 0.5 * alpha0 * lam_batch - eta))


def linear_rule(B, alpha0, B0=128):
    r"""Linear scaling rule α(B) = α_0 · B/B_0 (the SGD law, Sec. 10.1)."""
    B = _as_positive("B (batch size)", B)
    alpha0 = _as_positive("alpha0 (learning rate)", alpha0)
    B0 = _as_positive("B0 (reference batch size)", B0)
    return _out(alpha0 * B / B0)


def sqrt_rule(B, alpha0, B0=128):
    r"""Square-root scaling rule α(B) = α_0 · sqrt(B/B_0) (the Adam law, Eq. 31)."""
    B = _as_positive("B (batch size)", B)
    alpha0 = _as_positive("alpha0 (learning rate)", alpha0)
    B0 = _as_positive("B0 (reference batch size)", B0)
    return _out(alpha0 * np.sqrt(B / B0))


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`: lr ≈ prefactor · B**exponent."""

    exponent: float
    prefactor: float
    ci_low: float
    ci_high: float
    stderr: float
    n: int
    confidence: float

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return (f"exponent {self.exponent:.2f} ({pct}% CI {self.ci_low:.2f} to "
                f"{self.ci_high:.2f}, n={self.n})")


def fit_power_law(B, lr, confidence=0.95) -> PowerLawFit:
    r"""Fit lr = c · B^k by least squares on log lr = log c + k log B.

    The interval is the Student-t interval of the slope with n − 2 degrees of freedom
    (needs at least three points). Use it to compare a measured scaling exponent with
    the laws k = 1 (SGD) and k = 1/2 (Adam).
    """
    B = _as_positive("B (batch sizes)", B).ravel()
    lr = _as_positive("lr (learning rates)", lr).ravel()
    if B.shape != lr.shape:
        raise ValueError(f"B and lr must have the same length, got {B.size} and {lr.size}")
    if B.size < 3:
        raise ValueError(f"fit_power_law needs at least 3 points, got {B.size}")
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
