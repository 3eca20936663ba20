r"""The batch-noise scale and the main theorem (Theorem 4) of Granziol, Zohren & Roberts (2022).

Notation: ``N`` training samples, ``B`` batch size, ``P`` parameters, ``sigma_eps`` the
root-mean-square standard deviation σ_ε of one entry of the per-sample Hessian. The batch
Hessian is H_batch = H_emp + ε, and the noise matrix ε has entries of variance σ_jk²/𝔟
with the effective batch size 1/𝔟 = 1/B − 1/N (Eqs. 6–7). Its spectrum is a semicircle of
radius 2σ with σ² = (P/𝔟)σ_ε² (Theorem 3), exactly when every row of the variance field
has the same mean (otherwise see :mod:`rmtlr.rmt.dyson`).

Every function taking several of P, B, N, σ_ε takes them by keyword, so that they cannot
be swapped silently. B is a real number in the formulas (curves over fine grids of B are
allowed); P and N must be whole numbers, N may be ``numpy.inf`` (fresh samples every step,
Remark 6).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from rmtlr.rmt.ensembles import Seed, as_generator
from rmtlr.rmt.validation import (
    finite,
    integer,
    nonnegative,
    positive,
    real,
    scalar_or_array,
    whole_number,
)

__all__ = [
    "batch_noise_model",
    "batch_noise_scale",
    "batch_outlier",
    "effective_batch_size",
    "entry_variance",
    "overlap",
    "without_replacement_factor",
]


def _batch_and_samples(B: ArrayLike, N: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    B = positive("B (batch size)", B)
    N = whole_number("N (number of samples)", N, allow_inf=True)
    if np.any(B > N):
        raise ValueError(
            f"B (batch size) must satisfy 0 < B <= N; got B={B.max():g} > N={N.min():g}"
        )
    return B, N


def effective_batch_size(B: ArrayLike, N: ArrayLike) -> float | np.ndarray:
    r"""Effective batch size 𝔟 = B/(1 − B/N), i.e. 1/𝔟 = 1/B − 1/N (Eq. 7).

    Sampling ``B`` of ``N`` samples without replacement gives a noise variance
    proportional to 1/B − 1/N; ``B = N`` gives 𝔟 = ∞ (no noise), and ``N = inf`` (fresh
    samples every step, Remark 6) gives 𝔟 = B.

    Parameters
    ----------
    B : array_like
        Batch size(s), 0 < B ≤ N (real numbers are allowed, for curves over B).
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.

    Returns
    -------
    float or numpy.ndarray
        𝔟 (``inf`` where B = N).

    Raises
    ------
    TypeError
        If ``B`` or ``N`` is not real (a string, a bool, ...).
    ValueError
        If ``B`` is not finite and > 0, ``N`` is not a whole number ≥ 1 or ∞, or B > N.

    Examples
    --------
    >>> effective_batch_size(100, 200)  # 1/𝔟 = 1/100 − 1/200
    200.0
    >>> effective_batch_size(128, float("inf")), effective_batch_size(50, 50)
    (128.0, inf)
    """
    B, N = _batch_and_samples(B, N)
    with np.errstate(divide="ignore"):
        inv = 1.0 / B - 1.0 / N
        eff = np.where(inv > 0, 1.0 / np.where(inv > 0, inv, 1.0), np.inf)
    return scalar_or_array(eff)


def _sigma_eps(sigma_eps: ArrayLike) -> np.ndarray:
    return nonnegative("sigma_eps (per-entry Hessian noise σ_ε)", sigma_eps)


def batch_noise_scale(
    *, P: ArrayLike, B: ArrayLike, N: ArrayLike, sigma_eps: ArrayLike
) -> float | np.ndarray:
    r"""Semicircle scale of the batch noise, σ = sqrt(P/𝔟)·σ_ε (Theorems 3–4).

    The spectrum of ε tends to a semicircle on [−2σ, 2σ], and σ is also the BBP threshold
    of Theorem 4: a full-data eigenvalue |λ| > σ stays an outlier.

    Parameters
    ----------
    P : array_like
        Number of parameters, a whole number ≥ 1.
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.
    sigma_eps : array_like
        Per-entry standard deviation σ_ε ≥ 0 of the per-sample Hessian.

    Returns
    -------
    float or numpy.ndarray
        σ = sqrt(P/𝔟)·σ_ε (0 at B = N).

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range (see :func:`effective_batch_size`; P must be a whole
        number ≥ 1, σ_ε finite and ≥ 0).

    Examples
    --------
    >>> batch_noise_scale(P=10_000, B=100, N=float("inf"), sigma_eps=0.02)
    0.2
    """
    P = whole_number("P (number of parameters)", P)
    sigma_eps = _sigma_eps(sigma_eps)
    eff = np.asarray(effective_batch_size(B, N), dtype=float)
    return scalar_or_array(np.sqrt(P / eff) * sigma_eps)


def _eigenvalue_and_noise_scale(
    lam: ArrayLike, P: ArrayLike, B: ArrayLike, N: ArrayLike, sigma_eps: ArrayLike
) -> list[np.ndarray]:
    """Validate λ and broadcast it with the semicircle scale s = sqrt(P/𝔟)·σ_ε."""
    lam = finite("lam (eigenvalue)", lam)
    s = np.asarray(batch_noise_scale(P=P, B=B, N=N, sigma_eps=sigma_eps), dtype=float)
    return np.broadcast_arrays(lam, s)


def batch_outlier(
    lam: ArrayLike, *, P: ArrayLike, B: ArrayLike, N: ArrayLike, sigma_eps: ArrayLike
) -> float | np.ndarray:
    r"""Theorem 4: where a full-data Hessian eigenvalue λ moves in the batch Hessian.

    With σ² = (P/𝔟)·σ_ε²,

    .. math::

        λ' = λ + \frac{P}{𝔟}\frac{σ_ε^2}{λ}  \quad\text{if } |λ| > \sqrt{P/𝔟}\,σ_ε,
        \qquad λ' = \pm 2\sqrt{P/𝔟}\,σ_ε \quad\text{otherwise,}

    the sign of the edge being the sign of λ (λ = 0 maps to the upper edge). Positive
    outliers move up, negative ones down (λ'_P in the theorem). As B → N, 𝔟 → ∞ and
    λ' → λ. A finite-P outlier fluctuates with sd sqrt(2σ²(1 − σ²/λ²)/P).

    Parameters
    ----------
    lam : array_like
        Full-data eigenvalue(s) λ, any sign.
    P : array_like
        Number of parameters, a whole number ≥ 1.
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.
    sigma_eps : array_like
        Per-entry standard deviation σ_ε ≥ 0 of the per-sample Hessian.

    Returns
    -------
    float or numpy.ndarray
        λ', broadcast over the arguments.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If ``lam`` is not finite or another argument is out of range (see
        :func:`batch_noise_scale`).

    Examples
    --------
    >>> # σ = sqrt(10⁴/100)·0.02 = 0.2: λ = 1 moves to 1 + 0.2²/1
    >>> batch_outlier(1.0, P=10_000, B=100, N=float("inf"), sigma_eps=0.02)
    1.04
    >>> batch_outlier(0.1, P=10_000, B=100, N=float("inf"), sigma_eps=0.02)  # the edge 2σ
    0.4
    """
    lam, s = _eigenvalue_and_noise_scale(lam, P, B, N, sigma_eps)
    above = np.abs(lam) > s
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = lam + s**2 / np.where(lam == 0, 1.0, lam)
    edge = np.where(lam < 0, -2.0 * s, 2.0 * s)
    return scalar_or_array(np.where(above, moved, edge))


def without_replacement_factor(B: ArrayLike, N: ArrayLike) -> float | np.ndarray:
    r"""Exact variance factor of a batch mean drawn without replacement (Eq. 6).

    .. math:: f(B, N) = \frac1B - \frac{B-1}{B(N-1)} = \frac{N-B}{B(N-1)}
              \;\approx\; \frac1B - \frac1N = \frac1𝔟 ,

    so that Var[ε_jk] = f(B, N)·Var_i[H_i,jk] when Var_i is the population variance over
    the N samples (normalised by N). Equivalently f·Var_i = Var_i^{(N−1)}/𝔟 with the
    variance normalised by N − 1, which makes Theorem 4's 1/𝔟 exact. ``N = inf`` gives
    1/B (fresh samples, Remark 6); B = N gives 0; N = 1 forces B = 1 and gives 0.

    Parameters
    ----------
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.

    Returns
    -------
    float or numpy.ndarray
        f(B, N).

    Raises
    ------
    TypeError
        If ``B`` or ``N`` is not real.
    ValueError
        If ``B`` or ``N`` is out of range (see :func:`effective_batch_size`).

    Examples
    --------
    >>> round(without_replacement_factor(10, 100), 6)  # (100 − 10)/(10·99)
    0.090909
    """
    B, N = _batch_and_samples(B, N)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(np.isinf(N), 1.0 / B, (N - B) / (B * np.where(N > 1, N - 1.0, 1.0)))
    return scalar_or_array(f)


def _check_symmetric(name: str, M: ArrayLike) -> np.ndarray:
    M = real(name, M)
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


def batch_noise_model(
    H_emp: ArrayLike,
    B: float,
    N: float,
    sigma_eps: float | None = None,
    *,
    profile: ArrayLike | None = None,
    per_sample: ArrayLike | Callable[[int], ArrayLike] | None = None,
    seed: Seed = None,
) -> np.ndarray:
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
    H_emp : array_like
        P×P symmetric full-data Hessian.
    B : float
        Batch size, 0 < B ≤ N (an integer in the per-sample mode).
    N : float
        Number of training samples (``numpy.inf`` allowed in the Gaussian mode: Remark 6).
    sigma_eps : float, optional
        Per-entry standard deviation σ_ε ≥ 0 of the per-sample Hessian.
    profile : array_like, optional
        P×P symmetric array of per-sample entry variances σ²_jk ≥ 0.
    per_sample : array_like or callable, optional
        N×P×P per-sample Hessians, or a callable ``i -> H_i``.
    seed : int, numpy.random.Generator or None
        Randomness (see :func:`rmtlr.rmt.ensembles.as_generator`).

    Returns
    -------
    numpy.ndarray
        The P×P batch Hessian.

    Raises
    ------
    TypeError
        If an argument has the wrong type (e.g. a string for B or N).
    ValueError
        If not exactly one noise source is given, a matrix is not symmetric or has the
        wrong shape, the per-sample Hessians do not average to H_emp, or a size is out
        of range (in the per-sample mode B and N must be whole numbers, B ≤ N).

    Examples
    --------
    >>> H = np.diag([3.0, 0.0, 0.0])
    >>> Hb = batch_noise_model(H, 4, 4, sigma_eps=0.1, seed=0)  # B = N: no noise
    >>> bool(np.array_equal(Hb, H))
    True
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
            sigma = float(_sigma_eps(sigma_eps))
            scale = np.sqrt(f) * sigma
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

    B = integer("B (batch size) in the per-sample mode", B)
    N = integer("N (number of samples) in the per-sample mode", N)
    if not B <= N:
        raise ValueError(f"B (batch size) must satisfy 0 < B <= N; got B={B}, N={N}")
    if callable(per_sample):
        get = per_sample
    else:
        stack = real("per_sample", per_sample)
        if stack.shape != (N, P, P):
            raise ValueError(
                f"per_sample must have shape (N, P, P) = {(N, P, P)}, got {stack.shape}"
            )
        mean = stack.mean(axis=0)
        atol = 1e-10 * max(1.0, float(np.abs(H_emp).max()))
        if not np.allclose(mean, H_emp, rtol=1e-8, atol=atol):
            raise ValueError("per_sample must average to H_emp (H_emp = (1/N) Σ_i H_i, Eq. 4)")
        get = stack.__getitem__
    idx = rng.choice(N, size=B, replace=False)
    total = np.zeros((P, P))
    for i in idx:
        Hi = np.asarray(get(int(i)), dtype=float)
        if Hi.shape != (P, P):
            raise ValueError(f"per-sample Hessian {int(i)} has shape {Hi.shape}, expected {(P, P)}")
        total += Hi
    return total / B


def entry_variance(per_sample: ArrayLike, *, ddof: int = 1) -> float:
    r"""σ_ε² = mean over entries (j, k) of Var_i[H_i,jk], from N per-sample matrices.

    With ``ddof=1`` (normalised by N − 1) Var[ε_jk] = Var_i[H_i,jk]/𝔟 exactly for
    batches drawn without replacement, so this σ_ε² is the one Theorem 4 and
    :func:`batch_outlier` expect; with ``ddof=0`` it is the Var[H_i] of Eq. 6, to be used
    with :func:`without_replacement_factor`. (For a network, where the per-sample
    Hessians are only available as products,
    :func:`rmtlr.curvature.hessian_variance` estimates the same quantity.)

    Parameters
    ----------
    per_sample : array_like
        N×P×P array of per-sample Hessians (N ≥ 2 for ``ddof=1``).
    ddof : int
        0 or 1, the variance's delta degrees of freedom.

    Returns
    -------
    float
        σ_ε².

    Raises
    ------
    TypeError
        If ``per_sample`` is not real.
    ValueError
        If ``per_sample`` is not N×P×P, not finite or has N ≤ ``ddof``, or ``ddof`` is
        not 0 or 1.

    Examples
    --------
    >>> stack = np.array([np.eye(2), -np.eye(2)])  # entry variances 2, 0, 0, 2 (ddof=1)
    >>> entry_variance(stack)
    1.0
    """
    stack = real("per_sample", per_sample)
    if stack.ndim != 3 or stack.shape[1] != stack.shape[2]:
        raise ValueError(f"per_sample must be an N×P×P array, got shape {stack.shape}")
    if isinstance(ddof, bool) or ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
    if stack.shape[0] <= ddof:
        raise ValueError(f"need N > ddof per-sample matrices, got N={stack.shape[0]}")
    if not np.all(np.isfinite(stack)):
        raise ValueError("per_sample must be finite")
    return float(np.var(stack, axis=0, ddof=ddof).mean())


def overlap(
    lam: ArrayLike, *, P: ArrayLike, B: ArrayLike, N: ArrayLike, sigma_eps: ArrayLike
) -> float | np.ndarray:
    r"""Theorem 10: squared overlap of a batch eigenvector with its full-data eigenvector.

    .. math:: |⟨φ'_i, φ_i⟩|^2 = 1 - \frac{P}{𝔟}\frac{σ_ε^2}{λ_i^2}
              \quad\text{if } |λ_i| > \sqrt{P/𝔟}\,σ_ε,\qquad 0 \text{ otherwise}

    (the spiked-Wigner overlap 1 − σ²/θ² of Lemma 5's model with σ² = (P/𝔟)σ_ε²). As
    B → N the overlap tends to 1; at the threshold it vanishes continuously. At finite P
    it fluctuates with sd ≈ 0.5/sqrt(P) for |λ| ≥ 2σ.

    Parameters
    ----------
    lam : array_like
        Full-data eigenvalue(s) λ_i, any sign.
    P : array_like
        Number of parameters, a whole number ≥ 1.
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.
    sigma_eps : array_like
        Per-entry standard deviation σ_ε ≥ 0 of the per-sample Hessian.

    Returns
    -------
    float or numpy.ndarray
        The squared overlap, in [0, 1].

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If ``lam`` is not finite or another argument is out of range.

    Examples
    --------
    >>> round(overlap(1.0, P=10_000, B=100, N=float("inf"), sigma_eps=0.02), 12)  # 1 − 0.2²
    0.96
    """
    lam, s = _eigenvalue_and_noise_scale(lam, P, B, N, sigma_eps)
    above = np.abs(lam) > s
    with np.errstate(divide="ignore", invalid="ignore"):
        ov = 1.0 - (s / np.where(above, lam, 1.0)) ** 2
    return scalar_or_array(np.where(above, ov, 0.0))
