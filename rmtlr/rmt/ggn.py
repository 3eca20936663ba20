r"""The generalised Gauss–Newton matrix under mini-batching (the paper's Thm 7).

The GGN is positive semi-definite: a sum of per-sample terms G_i = J_iᵀ H_ℓ J_i, and the
batch noise enters through the per-sample Jacobians J_i, not as an independent additive
matrix. The standard random-matrix model for this is the **spiked sample covariance**
(spiked Wishart) matrix; its outliers and eigenvector overlaps are classical
(Baik, Ben Arous & Péché 2005; Baik & Silverstein 2006; Paul 2007).

Model used here (stated once, used by every ``ggn_*`` function):

* Per-sample terms are rank one, G_i = g_i g_iᵀ (one output, or one output direction),
  and the vectors g_i are exchangeable with second-moment matrix equal to the **full GGN**
  G = (1/N) Σ_i g_i g_iᵀ = σ²·I + Σ_k (λ_k − σ²) v_k v_kᵀ: a flat bulk at level σ² (the
  argument ``noise_var``, the entry variance of the Wishart noise) plus a few outliers
  λ_k > σ² (the low-rank structure of Sec. 7.1).
* The batch GGN (1/B) Σ_{i∈batch} g_i g_iᵀ is a sample covariance of this population. Its
  fluctuation about G has variance ∝ 1/B − 1/N = 1/𝔟 (Eqs. 6–7), so it is modelled as a
  sample covariance of 𝔟 draws: ratio γ = P/𝔟.

Then Baik–Silverstein gives, with ℓ = λ/σ²,

    λ' = λ·(1 + γσ²/(λ − σ²))  if λ > σ²(1 + √γ)  (BBP threshold),  else σ²(1 + √γ)².

This is exact (P → ∞, γ fixed) for fresh samples (N = ∞, Remark 6, 𝔟 = B) and at B = N
(γ = 0, λ' = λ). For finite N it is only the leading order in P/N: if the full GGN is
exactly σ²I + spikes, a batch is σ²(N/B)·G^{1/2}Q_B Q_Bᵀ G^{1/2}/σ² with Q_B the B columns
of a Haar P×N matrix with orthonormal rows, so the bulk is a Wachter (Jacobi) law with
upper edge σ²(√(1 − P/N) + √(P/𝔟))² while N − B ≥ P (:func:`ggn_batch_edge`), which tends
to the Marchenko–Pastur edge σ²(1 + √(P/𝔟))² when P ≪ N. The outliers of this
multiplicative spike follow from the T-transform of that law (Benaych-Georges &
Nadakuditi 2011, the S-transform of the free product of two projections of ranks P/N and
B/N): with a = P/N and s = ℓ − 1 + a,

    λ' = λ·(1 + γ/s)  if ℓ > 1 − a + √((1 − a)γ),  else the Wachter edge;
    |⟨φ', φ⟩|² = 1 − ℓγ/(s(s + γ))  above that threshold, else 0.

At the threshold λ' equals the edge, so the prediction is continuous, and a = 0 gives
Baik–Silverstein and Paul back. :func:`ggn_batch_outlier` and :func:`ggn_batch_overlap` use
this finite-N form (``finite_N=False``: the leading order). Example, P/N/B = 400/1000/200,
λ = 3σ²: simulation 5.03, finite N 5.00, leading order 5.40; at λ = 2.2σ² (below the
leading-order threshold 2.26σ², above the finite-N one 1.58σ²): 4.42, 4.40, 5.13.

**Why this differs from an additive reading of Thm 7.** If instead the batch GGN were
G + ε with ε an independent, centred Marchenko–Pastur matrix (the Hessian's Theorem 4 with
the semicircle replaced by MP), the Benaych-Georges–Nadakuditi outlier is
λ' = λ + γσ⁴/(λ − σ²(1 + γ)) (:func:`ggn_outlier_additive_noise`): the shift decays like
1/λ. In the sample-covariance model the signal direction is itself sampled, so the shift
tends to γσ² (it does not decay), λ' ≈ λ + γσ² + γσ⁴/λ.

**The paper's printed Eq. 18** reads λ'₁ = (λ₁ + σ²(1 − P/𝔟))/(1 − Pσ²/(λ₁𝔟)) if
λ₁ > σ²(1 + P/𝔟), else 2σ²(1 + P/𝔟). :func:`paper_eq18` evaluates it verbatim, for
comparison only. Its threshold σ²(1 + γ) and sub-threshold value 2σ²(1 + γ) are neither
the BBP threshold σ²(1 + √γ) nor the Marchenko–Pastur edge σ²(1 + √γ)², it does not return
λ₁ at B = N (γ = 0 gives λ₁ + σ²), and read without its threshold its denominator changes
sign when γσ² > λ₁; the functions above are the standard results it was meant to express.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from rmtlr.rmt.batch import effective_batch_size
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
    "batch_ggn_model",
    "ggn_batch_edge",
    "ggn_batch_outlier",
    "ggn_batch_overlap",
    "ggn_outlier_additive_noise",
    "ggn_ratio",
    "paper_eq18",
    "per_sample_ggn_vectors",
    "spiked_wishart_outlier",
    "spiked_wishart_overlap",
    "wishart_bbp_threshold",
]


def _noise_var(noise_var: ArrayLike) -> np.ndarray:
    return positive("noise_var (GGN bulk level σ²)", noise_var)


def _gamma(gamma: ArrayLike) -> np.ndarray:
    return nonnegative("gamma (ratio p/n)", gamma)


def wishart_bbp_threshold(gamma: ArrayLike, *, noise_var: ArrayLike = 1.0) -> float | np.ndarray:
    r"""BBP threshold of the spiked covariance model: ℓ_c = σ²(1 + √γ).

    A population eigenvalue above it separates from the Marchenko–Pastur bulk of the
    sample covariance (Baik, Ben Arous & Péché 2005); γ = p/n is the dimension-to-sample
    ratio, σ² the bulk level.

    Parameters
    ----------
    gamma : array_like
        Ratio γ = p/n ≥ 0.
    noise_var : array_like
        Bulk level σ² > 0 (the entry variance of the Wishart noise).

    Returns
    -------
    float or numpy.ndarray
        ℓ_c.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If ``gamma`` is negative or not finite, or ``noise_var`` is not finite and > 0.

    Examples
    --------
    >>> wishart_bbp_threshold(0.25, noise_var=2.0)
    3.0
    """
    gamma = _gamma(gamma)
    noise_var = _noise_var(noise_var)
    return scalar_or_array(noise_var * (1.0 + np.sqrt(gamma)))


def spiked_wishart_outlier(
    ell: ArrayLike, *, gamma: ArrayLike, noise_var: ArrayLike = 1.0
) -> float | np.ndarray:
    r"""Top sample eigenvalue for a population eigenvalue ℓ (Baik & Silverstein 2006).

    Population Σ = σ²(I + Σ_k (ℓ_k/σ² − 1) v_k v_kᵀ), sample covariance of n draws in
    dimension p, γ = p/n:

    .. math:: λ → ℓ\Big(1 + \frac{γσ^2}{ℓ - σ^2}\Big) \ \ (ℓ > σ^2(1+\sqrt γ)),
              \qquad λ → σ^2(1+\sqrt γ)^2 \ \text{otherwise (the MP edge).}

    Simulation (p = 1000): γ = 0.5, ℓ = 3 gives 3.81 against 3.75; γ = 2, ℓ = 4 gives
    6.661 against 6.667.

    Parameters
    ----------
    ell : array_like
        Population eigenvalue(s) ℓ > 0.
    gamma : array_like
        Ratio γ = p/n ≥ 0.
    noise_var : array_like
        Bulk level σ² > 0.

    Returns
    -------
    float or numpy.ndarray
        The limiting top sample eigenvalue(s).

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> spiked_wishart_outlier(3.0, gamma=0.5)
    3.75
    """
    ell = positive("ell (population eigenvalue)", ell)
    gamma = _gamma(gamma)
    noise_var = _noise_var(noise_var)
    ell, gamma, noise_var = np.broadcast_arrays(ell, gamma, noise_var)
    above = ell > noise_var * (1.0 + np.sqrt(gamma))
    safe = np.where(above, ell - noise_var, 1.0)
    edge = noise_var * (1.0 + np.sqrt(gamma)) ** 2
    return scalar_or_array(np.where(above, ell * (1.0 + gamma * noise_var / safe), edge))


def spiked_wishart_overlap(
    ell: ArrayLike, *, gamma: ArrayLike, noise_var: ArrayLike = 1.0
) -> float | np.ndarray:
    r"""Squared overlap of the top sample eigenvector with the population spike (Paul 2007).

    With t = ℓ/σ² − 1,

    .. math:: |⟨u, v⟩|^2 → \frac{1 - γ/t^2}{1 + γ/t} \ \ (t > \sqrt γ),
              \qquad 0 \ \text{otherwise.}

    Simulation (p = 1000, γ = 0.5): ℓ = 3 gives 0.707 against 0.700; ℓ = 5 gives 0.862
    against 0.861.

    Parameters
    ----------
    ell : array_like
        Population eigenvalue(s) ℓ > 0.
    gamma : array_like
        Ratio γ = p/n ≥ 0.
    noise_var : array_like
        Bulk level σ² > 0.

    Returns
    -------
    float or numpy.ndarray
        The limiting squared overlap(s).

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> round(spiked_wishart_overlap(3.0, gamma=0.5), 12)
    0.7
    """
    ell = positive("ell (population eigenvalue)", ell)
    gamma = _gamma(gamma)
    noise_var = _noise_var(noise_var)
    ell, gamma, noise_var = np.broadcast_arrays(ell, gamma, noise_var)
    t = ell / noise_var - 1.0
    above = t > np.sqrt(gamma)
    t = np.where(above, t, 1.0)
    return scalar_or_array(np.where(above, (1.0 - gamma / t**2) / (1.0 + gamma / t), 0.0))


def ggn_ratio(*, P: ArrayLike, B: ArrayLike, N: ArrayLike) -> float | np.ndarray:
    """Aspect ratio of the batch GGN as a sample covariance: γ = P/𝔟 = P(1/B − 1/N).

    Parameters
    ----------
    P : array_like
        Number of parameters, a whole number ≥ 1.
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.

    Returns
    -------
    float or numpy.ndarray
        γ (0 at B = N).

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range (see :func:`rmtlr.rmt.batch.effective_batch_size`).

    Examples
    --------
    >>> ggn_ratio(P=400, B=200, N=1000)  # 400·(1/200 − 1/1000)
    1.6
    """
    P = whole_number("P (number of parameters)", P)
    return scalar_or_array(P / np.asarray(effective_batch_size(B, N), dtype=float))


def _finite_n_ratio(P: ArrayLike, N: ArrayLike, finite_N: bool) -> np.ndarray:
    """Return a = P/N of the finite-N (Wachter) model, 0 for the leading order in P/N."""
    P = np.asarray(P, dtype=float)
    N = np.asarray(N, dtype=float)
    if not finite_N:
        return np.zeros(np.broadcast(P, N).shape)
    if np.any(P > N):
        raise ValueError(f"P must be <= N for the finite-N (Wachter) model, got P={P!r} > "
                         f"N={N!r}; pass finite_N=False for the leading order in P/N")
    return P / N


def ggn_batch_edge(
    *, P: ArrayLike, B: ArrayLike, N: ArrayLike, noise_var: ArrayLike, finite_N: bool = True
) -> float | np.ndarray:
    r"""Top of the batch-GGN bulk when the full GGN is σ²·I on the bulk directions.

    A batch of B of the N vectors g_i with (1/N) Σ g_i g_iᵀ = σ²I is σ²(N/B)·Q_B Q_Bᵀ with
    Q_B the B columns of a P×N matrix with orthonormal rows: a Jacobi (MANOVA) matrix. Its
    continuous part follows Wachter's (1980) law, with upper edge

    .. math:: σ^2\Big(\sqrt{1 - P/N} + \sqrt{P/𝔟}\Big)^2, \qquad 1/𝔟 = 1/B - 1/N,

    so the effective batch size appears exactly. When the left-out samples cannot span the
    space (N − B < P), Q_B Q_Bᵀ also has an eigenvalue 1 of multiplicity P − (N − B), and
    the top of the bulk is σ²N/B (σ² at B = N). With ``finite_N=False`` the
    Marchenko–Pastur edge σ²(1 + √(P/𝔟))² of the γ = P/𝔟 sample-covariance model is
    returned; the two agree when P ≪ N, and for N = ∞ both are σ²(1 + √(P/B))².

    Parameters
    ----------
    P : array_like
        Number of parameters, a whole number ≥ 1 (≤ N for the finite-N form).
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.
    noise_var : array_like
        Bulk level σ² > 0 of the full GGN.
    finite_N : bool
        Use the finite-N (Wachter) edge; False gives the leading order in P/N.

    Returns
    -------
    float or numpy.ndarray
        The edge.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range, or P > N with ``finite_N=True``.

    Examples
    --------
    >>> round(ggn_batch_edge(P=400, B=200, N=1000, noise_var=1.0), 4)  # (√0.6 + √1.6)²
    4.1596
    >>> round(ggn_batch_edge(P=400, B=200, N=1000, noise_var=1.0, finite_N=False), 4)
    5.1298
    """
    gamma = np.asarray(ggn_ratio(P=P, B=B, N=N), dtype=float)
    noise_var = _noise_var(noise_var)
    if not finite_N:
        return scalar_or_array(noise_var * (1.0 + np.sqrt(gamma)) ** 2)
    a = _finite_n_ratio(P, N, True)
    B = np.asarray(B, dtype=float)
    P = np.asarray(P, dtype=float)
    N = np.asarray(N, dtype=float)
    wachter = (np.sqrt(1.0 - a) + np.sqrt(gamma)) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        atom = np.where(N - B < P, N / B, 0.0)
    return scalar_or_array(noise_var * np.maximum(wachter, atom))


def _check_full_ggn_eig(lam: ArrayLike, noise_var: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    lam = finite("lam (full-GGN eigenvalue)", lam)
    noise_var = _noise_var(noise_var)
    if np.any(lam < noise_var):
        raise ValueError(
            "lam (full-GGN eigenvalue) must be >= noise_var: in the model G = σ²I + low rank "
            f"every eigenvalue is at least the bulk level; got lam={lam!r}, "
            f"noise_var={noise_var!r}"
        )
    return lam, noise_var


def _spike(
    lam: ArrayLike, P: ArrayLike, B: ArrayLike, N: ArrayLike, noise_var: ArrayLike,
    finite_N: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Broadcast (ℓ, γ, s = ℓ − 1 + a, above-threshold mask) of the finite-N model."""
    lam, noise_var = _check_full_ggn_eig(lam, noise_var)
    gamma = np.asarray(ggn_ratio(P=P, B=B, N=N), dtype=float)
    a = _finite_n_ratio(P, N, finite_N)
    ell, gamma, a = np.broadcast_arrays(lam / noise_var, gamma, a)
    above = ell > 1.0 - a + np.sqrt((1.0 - a) * gamma)
    s = np.where(above, ell - 1.0 + a, 1.0)  # > 0 wherever above; 1 elsewhere is unused
    return ell, gamma, s, above


def ggn_batch_outlier(
    lam: ArrayLike,
    *,
    P: ArrayLike,
    B: ArrayLike,
    N: ArrayLike,
    noise_var: ArrayLike,
    finite_N: bool = True,
) -> float | np.ndarray:
    r"""Batch-GGN outlier for a full-GGN eigenvalue λ (Thm 7 as a spiked sample covariance).

    With γ = P/𝔟 (Eq. 7), a = P/N, ℓ = λ/σ², s = ℓ − 1 + a and the model of this module's
    docstring,

    .. math:: λ' = λ\Big(1 + \frac{γ}{s}\Big)
              \ \text{ if } ℓ > 1 - a + \sqrt{(1 - a)γ},
              \qquad λ' = \text{the bulk edge (:func:`ggn_batch_edge`) otherwise,}

    the finite-N (Wachter) result, continuous at the threshold, where λ' is the bulk edge.
    ``finite_N=False`` (or N = ∞) gives a = 0: Baik–Silverstein with the BBP threshold
    σ²(1 + √γ) and the Marchenko–Pastur edge σ²(1 + √γ)² below it, the leading order in
    P/N, which overstates the batch value near and below the threshold when P/N is not
    small (P/N/B = 400/1000/200, λ = σ²: 5.13 against the edge 4.16 that simulation shows).
    For λ ≫ σ² the shift tends to (P/𝔟)σ², independent of λ (unlike Theorem 4's
    (P/𝔟)σ_ε²/λ for the Hessian). As B → N, γ → 0 and λ' → λ.

    Parameters
    ----------
    lam : array_like
        Full-GGN eigenvalue(s) λ ≥ ``noise_var``.
    P : array_like
        Number of parameters, a whole number ≥ 1; the finite-N form needs P ≤ N (the full
        GGN σ²I + low rank has rank P ≤ N).
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.
    noise_var : array_like
        Bulk level σ² > 0 of the full GGN (per-direction second moment of the g_i).
    finite_N : bool
        Use the finite-N (Wachter) form; False gives the leading order in P/N.

    Returns
    -------
    float or numpy.ndarray
        λ'.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If λ < σ², another argument is out of range, or P > N with ``finite_N=True``.

    Examples
    --------
    >>> round(ggn_batch_outlier(3.0, P=400, B=200, N=1000, noise_var=1.0), 2)  # sim. 5.03
    5.0
    >>> round(ggn_batch_outlier(3.0, P=400, B=200, N=1000, noise_var=1.0, finite_N=False), 2)
    5.4
    """
    ell, gamma, s, above = _spike(lam, P, B, N, noise_var, finite_N)
    edge = np.asarray(
        ggn_batch_edge(P=P, B=B, N=N, noise_var=noise_var, finite_N=finite_N), dtype=float
    )
    nv = np.broadcast_to(np.asarray(noise_var, dtype=float), ell.shape)
    return scalar_or_array(np.where(above, nv * ell * (1.0 + gamma / s), edge))


def ggn_batch_overlap(
    lam: ArrayLike,
    *,
    P: ArrayLike,
    B: ArrayLike,
    N: ArrayLike,
    noise_var: ArrayLike,
    finite_N: bool = True,
) -> float | np.ndarray:
    r"""Squared overlap of a batch-GGN eigenvector with the full-GGN one.

    With the notation of :func:`ggn_batch_outlier` (finite N, Wachter),

    .. math:: |⟨φ', φ⟩|^2 = 1 - \frac{ℓγ}{s(s + γ)}
              \ \ \text{above the threshold of :func:`ggn_batch_outlier`, else 0}

    (1 at B = N). It is d log λ'/d log λ, and with a = 0 (``finite_N=False`` or N = ∞)
    Paul's (2007) (1 − γσ⁴/(λ−σ²)²)/(1 + γσ²/(λ−σ²)).

    Parameters
    ----------
    lam : array_like
        Full-GGN eigenvalue(s) λ ≥ ``noise_var``.
    P : array_like
        Number of parameters, a whole number ≥ 1 (≤ N for the finite-N form).
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.
    noise_var : array_like
        Bulk level σ² > 0 of the full GGN.
    finite_N : bool
        Use the finite-N (Wachter) form; False gives the leading order in P/N.

    Returns
    -------
    float or numpy.ndarray
        The squared overlap, in [0, 1].

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If λ < σ², another argument is out of range, or P > N with ``finite_N=True``.

    Examples
    --------
    >>> # γ = 0.5, N = ∞: Paul's (1 − 0.5/4)/(1 + 0.5/2) at ℓ = 3
    >>> round(ggn_batch_overlap(3.0, P=1, B=2, N=float("inf"), noise_var=1.0), 12)
    0.7
    """
    ell, gamma, s, above = _spike(lam, P, B, N, noise_var, finite_N)
    out = np.where(above, 1.0 - ell * gamma / (s * (s + gamma)), 0.0)
    return scalar_or_array(np.where(gamma == 0, 1.0, out))


def ggn_outlier_additive_noise(
    lam: ArrayLike, *, P: ArrayLike, B: ArrayLike, N: ArrayLike, noise_var: ArrayLike
) -> float | np.ndarray:
    r"""Outlier if Thm 7 is read additively: G_batch = G + ε, ε centred MP, independent of G.

    ε = σ²(W − I) with W a white Wishart matrix of ratio γ = P/𝔟 (so E ε = 0 and the bulk
    of G + ε is the MP law σ²W). For G = σ²I + (λ − σ²)vvᵀ the Benaych-Georges–Nadakuditi
    recipe with R_MP(g) = 1/(1 − γg) gives, with t = λ/σ² − 1,

    .. math:: λ' = λ + \frac{γσ^4}{λ - σ^2(1+γ)} \ \ (t > γ + \sqrt γ),
              \qquad λ' = σ^2(1+\sqrt γ)^2 \ \text{otherwise.}

    This is *not* the sample-covariance model (:func:`ggn_batch_outlier`); it is here to
    show what treating the GGN like the Hessian's Theorem 4 would predict. Its shift decays
    like γσ⁴/λ, whereas the sample-covariance shift tends to γσ². It is not the paper's
    printed Eq. 18 either (see the module docstring).

    Parameters
    ----------
    lam : array_like
        Full-GGN eigenvalue(s) λ ≥ ``noise_var``.
    P : array_like
        Number of parameters, a whole number ≥ 1.
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.
    noise_var : array_like
        Bulk level σ² > 0 of the full GGN.

    Returns
    -------
    float or numpy.ndarray
        λ' of the additive model.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If λ < σ² or another argument is out of range.

    Examples
    --------
    >>> # γ = 0.5: 3 + 0.5/(3 − 1.5)
    >>> round(ggn_outlier_additive_noise(3.0, P=1, B=2, N=float("inf"), noise_var=1.0), 12)
    3.333333333333
    """
    lam, noise_var = _check_full_ggn_eig(lam, noise_var)
    gamma = np.asarray(ggn_ratio(P=P, B=B, N=N), dtype=float)
    lam, gamma, noise_var = np.broadcast_arrays(lam, gamma, noise_var)
    t = lam / noise_var - 1.0
    above = t > gamma + np.sqrt(gamma)
    safe = np.where(above, t - gamma, 1.0)
    moved = lam + noise_var * gamma / safe
    return scalar_or_array(np.where(above, moved, noise_var * (1.0 + np.sqrt(gamma)) ** 2))


def _psd_factor(name: str, G: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvectors U and sqrt-eigenvalues of a validated positive semi-definite matrix."""
    G = real(name, G)
    if G.ndim != 2 or G.shape[0] != G.shape[1] or not np.allclose(G, G.T):
        raise ValueError(f"{name} must be a symmetric P×P matrix, got shape {G.shape}")
    if not np.all(np.isfinite(G)):
        raise ValueError(f"{name} must be finite")
    w, U = np.linalg.eigh(G)
    if w[0] < -1e-10 * max(1.0, abs(w[-1])):
        raise ValueError(f"{name} must be positive semi-definite")
    return U, np.sqrt(np.clip(w, 0.0, None))


def per_sample_ggn_vectors(G_full: ArrayLike, N: int, *, seed: Seed = None) -> np.ndarray:
    r"""N per-sample vectors g_i whose GGN (1/N) Σ g_i g_iᵀ equals ``G_full`` exactly.

    g_i = G^{1/2} z_i with Gaussian z_i whitened so that (1/N) Σ z_i z_iᵀ = I (N ≥ P).
    A synthetic data set for the model of this module: its full GGN is known exactly, and
    sub-batches of it are exact mini-batch GGNs (see :func:`batch_ggn_model`).

    Parameters
    ----------
    G_full : array_like
        P×P symmetric positive semi-definite full GGN.
    N : int
        Number of samples, an integer ≥ P.
    seed : int, numpy.random.Generator or None
        Randomness (see :func:`rmtlr.rmt.ensembles.as_generator`).

    Returns
    -------
    numpy.ndarray
        Array of shape (N, P), one g_i per row.

    Raises
    ------
    TypeError
        If ``N`` is not a real number or ``G_full`` is not real.
    ValueError
        If ``G_full`` is not symmetric positive semi-definite, or ``N`` is not a whole
        number ≥ P.

    Examples
    --------
    >>> G = np.diag([3.0, 1.0])
    >>> g = per_sample_ggn_vectors(G, 5, seed=0)
    >>> bool(np.allclose(g.T @ g / 5, G))
    True
    """
    U, root_w = _psd_factor("G_full", G_full)
    root = (U * root_w) @ U.T
    P = root.shape[0]
    N = integer("N (number of samples)", N, lo=P)
    Z = as_generator(seed).standard_normal((P, N))
    L = np.linalg.cholesky(Z @ Z.T / N)
    return (root @ np.linalg.solve(L, Z)).T


def batch_ggn_model(
    B: int,
    *,
    per_sample: ArrayLike | None = None,
    G_full: ArrayLike | None = None,
    seed: Seed = None,
) -> np.ndarray:
    r"""Sample a batch GGN (1/B) Σ_{i∈batch} g_i g_iᵀ.

    ``per_sample`` (N×P array of the g_i): B of the N rows drawn without replacement, the
    exact mini-batch GGN of that data set. ``G_full`` (P×P, positive semi-definite):
    B fresh Gaussian draws g ~ N(0, G_full) (N = ∞, Remark 6), a spiked Wishart matrix.

    Parameters
    ----------
    B : int
        Batch size, an integer ≥ 1 (≤ N in the per-sample mode).
    per_sample : array_like, optional
        N×P array of per-sample vectors g_i.
    G_full : array_like, optional
        P×P positive semi-definite population GGN.
    seed : int, numpy.random.Generator or None
        Randomness (see :func:`rmtlr.rmt.ensembles.as_generator`).

    Returns
    -------
    numpy.ndarray
        The P×P batch GGN.

    Raises
    ------
    TypeError
        If ``B`` is not a real number or an array is not real.
    ValueError
        If not exactly one of ``per_sample`` and ``G_full`` is given, a shape is wrong,
        ``G_full`` is not positive semi-definite, or ``B`` is not a whole number in range.

    Examples
    --------
    >>> g = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> batch_ggn_model(2, per_sample=g, seed=0)  # B = N: the full GGN
    array([[0.5, 0. ],
           [0. , 0.5]])
    """
    rng = as_generator(seed)
    if (per_sample is None) == (G_full is None):
        raise ValueError("give exactly one of per_sample or G_full")
    B = integer("B (batch size)", B)
    if per_sample is not None:
        X = real("per_sample", per_sample)
        if X.ndim != 2:
            raise ValueError(f"per_sample must be an N×P array of vectors g_i, got {X.shape}")
        if B > X.shape[0]:
            raise ValueError(f"B (batch size) must satisfy 0 < B <= N={X.shape[0]}, got {B}")
        Xb = X[rng.choice(X.shape[0], size=B, replace=False)]
    else:
        U, root_w = _psd_factor("G_full", G_full)
        Xb = rng.standard_normal((B, U.shape[0])) @ (U * root_w).T
    return Xb.T @ Xb / B


def paper_eq18(
    *,
    lam1: ArrayLike,
    P: ArrayLike,
    B: ArrayLike,
    N: ArrayLike,
    sigma: ArrayLike,
    threshold: bool = True,
) -> float | np.ndarray:
    r"""Evaluate the paper's Eq. 18 (Theorem 7) for the batch-GGN outlier, exactly as printed.

    With σ² the entry variance of the noise and 𝔟 the effective batch size
    (1/𝔟 = 1/B − 1/N, Eq. 7), the paper prints

    .. math:: λ'_1 = \frac{λ_1 + σ^2(1 - P/𝔟)}{1 - Pσ^2/(λ_1 𝔟)}
              \ \text{ if } λ_1 > σ^2(1 + P/𝔟),
              \qquad λ'_1 = 2σ^2(1 + P/𝔟) \ \text{ otherwise.}

    This function exists to compare that formula with the standard spiked-Wishart
    results; use :func:`ggn_batch_outlier` for predictions. With γ = P/𝔟 it departs from
    them in four ways:

    * **threshold**: σ²(1 + γ), where the BBP threshold of the spiked sample covariance is
      σ²(1 + √γ) (:func:`wishart_bbp_threshold`); the two agree only at γ = 0;
    * **sub-threshold value**: 2σ²(1 + γ), where the top of the Marchenko–Pastur bulk is
      σ²(1 + √γ)², smaller by σ²(1 − √γ)² (equal only at γ = 1);
    * **no noise, no shift**: at B = N (γ = 0) it gives λ₁ + σ², not λ₁; for λ₁ ≫ σ² its
      shift tends to σ² at every B, where Baik–Silverstein's tends to γσ²;
    * **sign of the denominator**: 1 − γσ²/λ₁ vanishes at λ₁ = γσ² and is negative for
      γσ² > λ₁. The threshold keeps the first branch away from that region (λ₁ > σ²(1 + γ)
      implies λ₁ > γσ²), but reading the outlier branch for every B, as the paper reads
      Theorem 4 in its Sec. 10.1, gives a pole and then negative eigenvalues of a positive
      semi-definite matrix. ``threshold=False`` evaluates that reading.

    The formula is continuous at its own threshold (both branches give 2σ²(1 + γ) there).

    Parameters
    ----------
    lam1 : array_like
        Full-GGN eigenvalue(s) λ₁ > 0.
    P : array_like
        Number of parameters, a whole number ≥ 1.
    B : array_like
        Batch size(s), 0 < B ≤ N.
    N : array_like
        Number of training samples, a whole number ≥ 1 or ``numpy.inf``.
    sigma : array_like
        Noise standard deviation σ > 0 (σ² is the entry variance, ``noise_var`` elsewhere
        in this module).
    threshold : bool
        Apply the printed threshold (default). False evaluates the outlier branch for every
        input, including where its denominator is zero (±inf) or negative.

    Returns
    -------
    float or numpy.ndarray
        λ'₁ as Eq. 18 prints it.

    Raises
    ------
    TypeError
        If an argument is not real.
    ValueError
        If an argument is out of range (see :func:`ggn_ratio`), or ``lam1`` or ``sigma`` is
        not finite and > 0.

    Examples
    --------
    >>> round(paper_eq18(lam1=3.0, P=400, B=200, N=1000, sigma=1.0), 4)  # (3 − 0.6)/(1 − 1.6/3)
    5.1429
    >>> paper_eq18(lam1=2.0, P=400, B=200, N=1000, sigma=1.0)  # below 2.6: 2·(1 + 1.6)
    5.2
    >>> paper_eq18(lam1=5.0, P=400, B=1000, N=1000, sigma=1.0)  # B = N: λ₁ + σ², not λ₁
    6.0
    """
    lam1 = positive("lam1 (full-GGN eigenvalue)", lam1)
    sigma = positive("sigma (noise standard deviation)", sigma)
    gamma = np.asarray(ggn_ratio(P=P, B=B, N=N), dtype=float)
    lam1, gamma, sigma = np.broadcast_arrays(lam1, gamma, sigma)
    s2 = sigma**2
    with np.errstate(divide="ignore", invalid="ignore"):
        outlier = (lam1 + s2 * (1.0 - gamma)) / (1.0 - gamma * s2 / lam1)
    if not threshold:
        return scalar_or_array(outlier)
    above = lam1 > s2 * (1.0 + gamma)
    return scalar_or_array(np.where(above, outlier, 2.0 * s2 * (1.0 + gamma)))
