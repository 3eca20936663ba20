"""The batch-noise scale and the main theorem (Theorem 4) of Granziol, Zohren & Roberts (2022).

Notation: ``N`` training samples, ``B`` batch size, ``P`` parameters, ``sigma_eps`` the
root-mean-square standard deviation of one entry of the per-sample Hessian, so that the
noise matrix ε = H_batch − H_emp has entries of variance σ_ε²/𝔟 (Eqs. 6–7).
"""

from __future__ import annotations

import numpy as np

__all__ = ["effective_batch_size", "batch_noise_scale", "batch_outlier"]


def _as_positive(name: str, value, *, allow_inf: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} must be a positive number, got NaN")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if not allow_inf and np.any(np.isinf(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


def _out(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


def effective_batch_size(B, N):
    r"""Effective batch size 𝔟 = B / (1 − B/N), i.e. 1/𝔟 = 1/B − 1/N (Eq. 7).

    Sampling ``B`` of ``N`` samples without replacement gives a noise variance
    proportional to 1/B − 1/N; ``B = N`` gives 𝔟 = ∞ (no noise), and ``N = inf`` (fresh
    samples every step, Remark 6) gives 𝔟 = B.

    Parameters
    ----------
    B: batch size(s), 0 < B ≤ N.
    N: number of training samples (may be ``numpy.inf``).

    Returns
    -------
    float or ndarray: 𝔟 (``inf`` where B = N).
    """
    B = _as_positive("B (batch size)", B)
    N = _as_positive("N (number of samples)", N, allow_inf=True)
    if np.any(B > N):
        raise ValueError(f"B (batch size) must satisfy 0 < B <= N; got B={B.max():g} > N={N.min():g}")
    with np.errstate(divide="ignore"):
        inv = 1.0 / B - 1.0 / N
        eff = np.where(inv > 0, 1.0 / np.where(inv > 0, inv, 1.0), np.inf)
    return _out(eff)


def batch_noise_scale(P, B, N, sigma_eps):
    r"""Semicircle scale of the batch noise, σ = sqrt(P/𝔟)·σ_ε (Sec. 3, Thm 3–4).

    The spectrum of ε tends to a semicircle on [−2σ, 2σ].
    """
    P = _as_positive("P (number of parameters)", P)
    sigma_eps = np.asarray(sigma_eps, dtype=float)
    if np.any(~np.isfinite(sigma_eps)) or np.any(sigma_eps < 0):
        raise ValueError(f"sigma_eps must be finite and >= 0, got {sigma_eps!r}")
    eff = np.asarray(effective_batch_size(B, N), dtype=float)
    return _out(np.sqrt(P / eff) * sigma_eps)


def batch_outlier(lam, P, B, N, sigma_eps):
    r"""Theorem 4: where a full-data Hessian eigenvalue λ moves in the batch Hessian.

    With σ² = (P/𝔟)·σ_ε²,

    .. math::

        λ' = λ + \frac{P}{𝔟}\frac{σ_ε^2}{λ}  \quad\text{if } |λ| > \sqrt{P/𝔟}\,σ_ε,
        \qquad λ' = \pm 2\sqrt{P/𝔟}\,σ_ε \quad\text{otherwise,}

    the sign of the edge being the sign of λ (λ = 0 maps to the upper edge). Positive
    outliers move up, negative ones down (λ'_P in the theorem). As B → N, 𝔟 → ∞ and
    λ' → λ.

    Parameters
    ----------
    lam: full-data eigenvalue(s) λ (any sign).
    P: number of parameters.
    B, N: batch size and number of samples (0 < B ≤ N).
    sigma_eps: root-mean-square per-entry standard deviation of the per-sample Hessian.
    """
    lam = np.asarray(lam, dtype=float)
    if np.any(~np.isfinite(lam)):
        raise ValueError("lam (eigenvalue) must be finite")
    s = np.asarray(batch_noise_scale(P, B, N, sigma_eps), dtype=float)
    lam, s = np.broadcast_arrays(lam, s)
    above = np.abs(lam) > s
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = lam + s**2 / np.where(lam == 0, 1.0, lam)
    edge = np.where(lam < 0, -2.0 * s, 2.0 * s)
    return _out(np.where(above, moved, edge))
