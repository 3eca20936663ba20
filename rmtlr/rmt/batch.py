"""The batch-noise scale and the main theorem (Theorem 4) of Granziol, Zohren & Roberts (2022).

Notation: ``N`` training samples, ``B`` batch size, ``P`` parameters, ``sigma_eps`` the
root-mean-square standard deviation of one entry of the per-sample Hessian, so that the
noise matrix ε = H_batch − H_emp has entries of variance σ_ε²/𝔟 (Eqs. 6–7).
"""

from __future__ import annotations

import numpy as np

from rmtlr.rmt.ensembles import as_generator

__all__ = [
    "batch_noise_model",
    "batch_noise_scale",
    "batch_outlier",
    "effective_batch_size",
    "hessian_variance",
    "overlap",
    "without_replacement_factor",
]


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


def _eigenvalue_and_noise_scale(lam, P, B, N, sigma_eps):
    """Validated λ and the semicircle scale s = sqrt(P/𝔟)·σ_ε, broadcast together."""
    lam = np.asarray(lam, dtype=float)
    if np.any(~np.isfinite(lam)):
        raise ValueError("lam (eigenvalue) must be finite")
    s = np.asarray(batch_noise_scale(P, B, N, sigma_eps), dtype=float)
    return np.broadcast_arrays(lam, s)


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
    lam, s = _eigenvalue_and_noise_scale(lam, P, B, N, sigma_eps)
    above = np.abs(lam) > s
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = lam + s**2 / np.where(lam == 0, 1.0, lam)
    edge = np.where(lam < 0, -2.0 * s, 2.0 * s)
    return _out(np.where(above, moved, edge))


def without_replacement_factor(B, N):
    r"""Exact variance factor of a batch mean drawn without replacement (Eq. 6).

    .. math:: f(B, N) = \frac1B - \frac{B-1}{B(N-1)} = \frac{N-B}{B(N-1)}
              \;\approx\; \frac1B - \frac1N = \frac1𝔟 ,

    so that Var[ε_jk] = f(B, N)·Var_i[H_i,jk] when Var_i is the population variance over
    the N samples (normalised by N). Equivalently f·Var_i = Var_i^{(N−1)}/𝔟 with the
    variance normalised by N − 1, which makes Theorem 4's 1/𝔟 exact. ``N = inf`` gives
    1/B (fresh samples, Remark 6); B = N gives 0; N = 1 forces B = 1 and gives 0.
    """
    B = _as_positive("B (batch size)", B)
    N = _as_positive("N (number of samples)", N, allow_inf=True)
    if np.any(B > N):
        raise ValueError(
            f"B (batch size) must satisfy 0 < B <= N; got B={B.max():g} > N={N.min():g}"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(np.isinf(N), 1.0 / B, (N - B) / (B * np.where(N > 1, N - 1.0, 1.0)))
    return _out(f)


def _check_symmetric(name: str, M) -> np.ndarray:
    M = np.asarray(M, dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be a square P×P matrix, got shape {M.shape}")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"{name} must be finite")
    atol = 1e-12 * max(1.0, float(np.abs(M).max(initial=0.0)))
    if not np.allclose(M, M.T, rtol=1e-10, atol=atol):
        raise ValueError(f"{name} must be symmetric")
    return M


def _symmetric_gaussian(P: int, rng: np.random.Generator) -> np.ndarray:
    """Symmetric matrix with independent N(0, 1) entries on and above the diagonal."""
    g = np.triu(rng.standard_normal((P, P)))
    return g + np.triu(g, 1).T


def batch_noise_model(H_emp, B, N, sigma_eps=None, *, profile=None, per_sample=None, seed=None):
    r"""Sample a batch Hessian H_batch = H_emp + ε (Eqs. 4–7).

    Exactly one noise source is given:

    ``sigma_eps`` or ``profile`` (Gaussian field)
        ε is symmetric with independent centred Gaussian entries on and above the diagonal,
        Var[ε_jk] = f(B, N)·σ²_jk with the exact without-replacement factor
        f = 1/B − (B−1)/(B(N−1)) of Eq. 6 (≈ 1/B − 1/N = 1/𝔟, Eq. 7; see
        :func:`without_replacement_factor`). ``sigma_eps`` is a scalar per-sample standard
        deviation (σ²_jk = σ_ε² for every entry); ``profile`` is a P×P symmetric array of
        per-sample entry variances σ²_jk (the "field", Sec. 3). The spectrum of ε tends to
        the semicircle of radius 2·sqrt(P·f)·σ_ε, σ_ε² the mean of the profile, when every
        row of the profile has the same mean (Thm 3 (ii)).
    ``per_sample`` (an actual data set)
        The N per-sample Hessians H_i, as an N×P×P array or a callable ``i -> H_i``
        (i = 0..N−1). B distinct indices are drawn uniformly without replacement and
        H_batch = (1/B) Σ_{i∈batch} H_i, so the law of ε is exactly that of mini-batch
        sampling; B = N gives ε = 0. For an array, H_emp must equal the mean of the H_i;
        for a callable the caller guarantees it (checking would cost all N matrices).

    Parameters
    ----------
    H_emp: P×P symmetric full-data Hessian.
    B: batch size, 0 < B ≤ N (an integer in the per-sample mode).
    N: number of training samples (``numpy.inf`` allowed in the Gaussian mode: Remark 6).
    seed: int, Generator or None (see :func:`rmtlr.rmt.ensembles.as_generator`).

    Returns
    -------
    ndarray: the P×P batch Hessian.
    """
    H_emp = _check_symmetric("H_emp", H_emp)
    P = H_emp.shape[0]
    given = sum(x is not None for x in (sigma_eps, profile, per_sample))
    if given != 1:
        raise ValueError("give exactly one of sigma_eps, profile or per_sample")
    rng = as_generator(seed)

    if per_sample is None:
        f = float(without_replacement_factor(B, N))
        if profile is None:
            sigma_eps = float(sigma_eps)
            if not np.isfinite(sigma_eps) or sigma_eps < 0:
                raise ValueError(f"sigma_eps must be finite and >= 0, got {sigma_eps!r}")
            scale = np.sqrt(f) * sigma_eps
        else:
            profile = _check_symmetric("profile", profile)
            if profile.shape != H_emp.shape:
                raise ValueError(
                    f"profile must have the shape of H_emp {H_emp.shape}, got {profile.shape}"
                )
            if np.any(profile < 0):
                raise ValueError("profile (per-entry variances) must be >= 0")
            scale = np.sqrt(f * profile)
        if f == 0.0:
            return H_emp.copy()
        return H_emp + scale * _symmetric_gaussian(P, rng)

    if not isinstance(B, (int, np.integer)) or isinstance(B, bool):
        raise ValueError(f"B (batch size) must be an integer in the per-sample mode, got {B!r}")  # noqa: TRY004 (sizes raise ValueError throughout)
    if not isinstance(N, (int, np.integer)) or isinstance(N, bool) or N <= 0:
        raise ValueError(
            f"N (number of samples) must be a positive integer in the per-sample mode, got {N!r}"
        )
    if not 0 < B <= N:
        raise ValueError(f"B (batch size) must satisfy 0 < B <= N; got B={B}, N={N}")
    if callable(per_sample):
        get = per_sample
    else:
        stack = np.asarray(per_sample, dtype=float)
        if stack.shape != (N, P, P):
            raise ValueError(
                f"per_sample must have shape (N, P, P) = {(N, P, P)}, got {stack.shape}"
            )
        mean = stack.mean(axis=0)
        atol = 1e-10 * max(1.0, float(np.abs(H_emp).max()))
        if not np.allclose(mean, H_emp, rtol=1e-8, atol=atol):
            raise ValueError("per_sample must average to H_emp (H_emp = (1/N) Σ_i H_i, Eq. 4)")
        get = stack.__getitem__
    idx = rng.choice(N, size=int(B), replace=False)
    total = np.zeros((P, P))
    for i in idx:
        Hi = np.asarray(get(int(i)), dtype=float)
        if Hi.shape != (P, P):
            raise ValueError(f"per-sample Hessian {int(i)} has shape {Hi.shape}, expected {(P, P)}")
        total += Hi
    return total / B


def hessian_variance(per_sample, ddof: int = 1) -> float:
    r"""σ_ε² = mean over entries (j, k) of Var_i[H_i,jk], from N per-sample matrices.

    With ``ddof=1`` (normalised by N − 1) Var[ε_jk] = Var_i[H_i,jk]/𝔟 exactly for
    batches drawn without replacement, so this σ_ε² is the one Theorem 4 and
    :func:`batch_outlier` expect; with ``ddof=0`` it is the Var[H_i] of Eq. 6, to be used
    with :func:`without_replacement_factor`. (The network version, by Hessian-vector
    products, lives in :mod:`rmtlr.curvature`.)

    Parameters
    ----------
    per_sample: N×P×P array of per-sample Hessians (N ≥ 2 for ddof=1).
    """
    stack = np.asarray(per_sample, dtype=float)
    if stack.ndim != 3 or stack.shape[1] != stack.shape[2]:
        raise ValueError(f"per_sample must be an N×P×P array, got shape {stack.shape}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
    if stack.shape[0] <= ddof:
        raise ValueError(f"need N > ddof per-sample matrices, got N={stack.shape[0]}")
    if not np.all(np.isfinite(stack)):
        raise ValueError("per_sample must be finite")
    return float(np.var(stack, axis=0, ddof=ddof).mean())


def overlap(lam, P, B, N, sigma_eps):
    r"""Theorem 10: squared overlap of a batch eigenvector with its full-data eigenvector.

    .. math:: |⟨φ'_i, φ_i⟩|^2 = 1 - \frac{P}{𝔟}\frac{σ_ε^2}{λ_i^2}
              \quad\text{if } |λ_i| > \sqrt{P/𝔟}\,σ_ε,\qquad 0 \text{ otherwise}

    (the spiked-Wigner overlap 1 − σ²/θ² of Lemma 5's model with σ² = (P/𝔟)σ_ε²). As
    B → N the overlap tends to 1; at the threshold it vanishes continuously.
    """
    lam, s = _eigenvalue_and_noise_scale(lam, P, B, N, sigma_eps)
    above = np.abs(lam) > s
    with np.errstate(divide="ignore", invalid="ignore"):
        ov = 1.0 - (s / np.where(above, lam, 1.0)) ** 2
    return _out(np.where(above, ov, 0.0))
