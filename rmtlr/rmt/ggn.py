r"""The generalised Gauss–Newton matrix under mini-batching (the paper's Thm 7).

The GGN is positive semi-definite: a sum of per-sample terms G_i = J_iᵀ H_ℓ J_i, and the
batch noise enters through the per-sample Jacobians J_i, not as an independent additive
matrix. The standard random-matrix model for this is the **spiked sample covariance**
(spiked Wishart) matrix; its outliers and eigenvector overlaps are classical
(Baik–Ben Arous–Péché 2005, Baik & Silverstein 2006, Paul 2007; RMT_NOTES §4.2).

Model used here (stated once, used by every ``ggn_*`` function):

* Per-sample terms are rank one, G_i = g_i g_iᵀ (one output, or one output direction),
  and the vectors g_i are exchangeable with second-moment matrix equal to the **full GGN**
  G = (1/N) Σ_i g_i g_iᵀ = σ²·I + Σ_k (λ_k − σ²) v_k v_kᵀ: a flat bulk at level σ² plus a
  few outliers λ_k > σ² (the low-rank structure of Sec. 7.1).
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
tends to γσ² (it does not decay), λ' ≈ λ + γσ² + γσ⁴/λ. The paper's printed Eq. 18 could
not be retrieved for this project; THEORY.md records that it matches neither the textbook
MP edge nor Baik–Silverstein, so no function here claims to reproduce it.
"""

from __future__ import annotations

import numpy as np

from rmtlr.rmt.batch import _as_positive, _out, effective_batch_size
from rmtlr.rmt.ensembles import as_generator

__all__ = [
    "batch_ggn_model",
    "ggn_batch_edge",
    "ggn_batch_outlier",
    "ggn_batch_overlap",
    "ggn_outlier_additive_noise",
    "ggn_ratio",
    "per_sample_ggn_vectors",
    "spiked_wishart_outlier",
    "spiked_wishart_overlap",
    "wishart_bbp_threshold",
]


def _nonneg(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if np.any(~np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return arr


def _finite(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if np.any(~np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


def wishart_bbp_threshold(gamma, sigma2=1.0):
    r"""BBP threshold of the spiked covariance model: ℓ_c = σ²(1 + √γ).

    A population eigenvalue above it separates from the Marchenko–Pastur bulk of the
    sample covariance (Baik, Ben Arous & Péché 2005); γ = p/n is the dimension-to-sample
    ratio, σ² the bulk level.
    """
    gamma = _nonneg("gamma (ratio p/n)", gamma)
    sigma2 = _as_positive("sigma2 (bulk level)", sigma2)
    return _out(sigma2 * (1.0 + np.sqrt(gamma)))


def spiked_wishart_outlier(ell, gamma, sigma2=1.0):
    r"""Top sample eigenvalue for a population eigenvalue ℓ (Baik & Silverstein 2006).

    Population Σ = σ²(I + Σ_k (ℓ_k/σ² − 1) v_k v_kᵀ), sample covariance of n draws in
    dimension p, γ = p/n:

    .. math:: λ → ℓ\Big(1 + \frac{γσ^2}{ℓ - σ^2}\Big) \ \ (ℓ > σ^2(1+\sqrt γ)),
              \qquad λ → σ^2(1+\sqrt γ)^2 \ \text{otherwise (the MP edge).}

    RMT_NOTES §4.2: γ = 0.5, ℓ = 3 gives 3.75; γ = 2, ℓ = 4 gives 6.667.
    """
    ell = _as_positive("ell (population eigenvalue)", ell)
    gamma = _nonneg("gamma (ratio p/n)", gamma)
    sigma2 = _as_positive("sigma2 (bulk level)", sigma2)
    ell, gamma, sigma2 = np.broadcast_arrays(ell, gamma, sigma2)
    above = ell > sigma2 * (1.0 + np.sqrt(gamma))
    safe = np.where(above, ell - sigma2, 1.0)
    edge = sigma2 * (1.0 + np.sqrt(gamma)) ** 2
    return _out(np.where(above, ell * (1.0 + gamma * sigma2 / safe), edge))


def spiked_wishart_overlap(ell, gamma, sigma2=1.0):
    r"""Squared overlap of the top sample eigenvector with the population spike (Paul 2007).

    With t = ℓ/σ² − 1,

    .. math:: |⟨u, v⟩|^2 → \frac{1 - γ/t^2}{1 + γ/t} \ \ (t > \sqrt γ), \qquad 0 \ \text{otherwise.}

    RMT_NOTES §4.2: γ = 0.5, ℓ = 3 gives 0.70; ℓ = 5 gives 0.8611.
    """
    ell = _as_positive("ell (population eigenvalue)", ell)
    gamma = _nonneg("gamma (ratio p/n)", gamma)
    sigma2 = _as_positive("sigma2 (bulk level)", sigma2)
    ell, gamma, sigma2 = np.broadcast_arrays(ell, gamma, sigma2)
    t = ell / sigma2 - 1.0
    above = t > np.sqrt(gamma)
    t = np.where(above, t, 1.0)
    return _out(np.where(above, (1.0 - gamma / t**2) / (1.0 + gamma / t), 0.0))


def ggn_ratio(P, B, N):
    """Aspect ratio of the batch GGN as a sample covariance: γ = P/𝔟 = P(1/B − 1/N)."""
    P = _as_positive("P (number of parameters)", P)
    return _out(P / np.asarray(effective_batch_size(B, N), dtype=float))


def ggn_batch_edge(P, B, N, sigma2, finite_N=True):
    r"""Top of the batch-GGN bulk when the full GGN is σ²·I on the bulk directions.

    A batch of B of the N vectors g_i with (1/N) Σ g_i g_iᵀ = σ²I is σ²(N/B)·Q_B Q_Bᵀ with
    Q_B the B columns of a P×N matrix with orthonormal rows: a Jacobi (MANOVA) matrix. Its
    continuous part follows Wachter's (1980) law, with upper edge

    .. math:: σ^2\Big(\sqrt{1 - P/N} + \sqrt{P/𝔟}\Big)^2, \qquad 1/𝔟 = 1/B - 1/N,

    so the effective batch size appears exactly. When the left-out samples cannot span the
    space (N − B < P), Q_B Q_Bᵀ also has an eigenvalue 1 of multiplicity P − (N − B), and the
    top of the bulk is σ²N/B (σ² at B = N). Requires P ≤ N. With ``finite_N=False`` the
    Marchenko–Pastur edge σ²(1 + √(P/𝔟))² of the γ = P/𝔟 sample-covariance model is
    returned; the two agree when P ≪ N, and for N = ∞ both are σ²(1 + √(P/B))².
    """
    gamma = np.asarray(ggn_ratio(P, B, N), dtype=float)
    sigma2 = _as_positive("sigma2 (GGN bulk level)", sigma2)
    if not finite_N:
        return _out(sigma2 * (1.0 + np.sqrt(gamma)) ** 2)
    P = np.asarray(P, dtype=float)
    B = np.asarray(B, dtype=float)
    N = np.asarray(N, dtype=float)
    if np.any(P > N):
        raise ValueError(f"P must be <= N for the Wachter edge, got P={P!r} > N={N!r}")
    wachter = (np.sqrt(1.0 - P / N) + np.sqrt(gamma)) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        atom = np.where(N - B < P, N / B, 0.0)
    return _out(sigma2 * np.maximum(wachter, atom))


def _check_full_ggn_eig(lam, sigma2):
    lam = _finite("lam (full-GGN eigenvalue)", lam)
    sigma2 = _as_positive("sigma2 (GGN bulk level)", sigma2)
    if np.any(lam < sigma2):
        raise ValueError(
            "lam (full-GGN eigenvalue) must be >= sigma2: in the model G = σ²I + low rank "
            f"every eigenvalue is at least the bulk level; got lam={lam!r}, sigma2={sigma2!r}"
        )
    return lam, sigma2


def _left_out_ratio(P, N, finite_N):
    """a = P/N of the finite-N (Wachter) model, 0 for the leading order in P/N."""
    P = np.asarray(P, dtype=float)
    N = np.asarray(N, dtype=float)
    if not finite_N:
        return np.zeros(np.broadcast(P, N).shape)
    if np.any(P > N):
        raise ValueError(f"P must be <= N for the finite-N (Wachter) model, got P={P!r} > "
                         f"N={N!r}; pass finite_N=False for the leading order in P/N")
    return P / N


def _spike(lam, P, B, N, sigma2, finite_N):
    """Broadcast (ℓ, γ, a, s = ℓ − 1 + a, above-threshold mask) of the finite-N model."""
    lam, sigma2 = _check_full_ggn_eig(lam, sigma2)
    gamma = np.asarray(ggn_ratio(P, B, N), dtype=float)
    a = _left_out_ratio(P, N, finite_N)
    ell, gamma, a, sigma2 = np.broadcast_arrays(lam / sigma2, gamma, a, sigma2)
    above = ell > 1.0 - a + np.sqrt((1.0 - a) * gamma)
    s = np.where(above, ell - 1.0 + a, 1.0)  # > 0 wherever above; 1 elsewhere is unused
    return ell, gamma, s, above


def ggn_batch_outlier(lam, P, B, N, sigma2, finite_N=True):
    r"""Batch-GGN outlier for a full-GGN eigenvalue λ (Thm 7 as a spiked sample covariance).

    With γ = P/𝔟 (Eq. 7), a = P/N, ℓ = λ/σ², s = ℓ − 1 + a and the model of this module's
    docstring,

    .. math:: λ' = λ\Big(1 + \frac{γ}{s}\Big)
              \ \text{ if } ℓ > 1 - a + \sqrt{(1 - a)γ},
              \qquad λ' = \text{ggn\_batch\_edge}(P, B, N, σ^2) \ \text{otherwise,}

    the finite-N (Wachter) result, continuous at the threshold, where λ' is the bulk edge.
    ``finite_N=False`` (or N = ∞) gives a = 0: Baik–Silverstein with the BBP threshold
    σ²(1 + √γ) and the Marchenko–Pastur edge σ²(1 + √γ)² below it, the leading order in
    P/N, which overstates the batch value near and below the threshold when P/N is not
    small (P/N/B = 400/1000/200, λ = σ²: 5.13 against the edge 4.16 that simulation shows).
    For λ ≫ σ² the shift tends to (P/𝔟)σ², independent of λ (unlike Theorem 4's
    (P/𝔟)σ_ε²/λ for the Hessian). As B → N, γ → 0 and λ' → λ.

    Parameters
    ----------
    lam: full-GGN eigenvalue(s), ≥ sigma2.
    P: number of parameters. B, N: batch size and number of samples (0 < B ≤ N); the
        finite-N form needs P ≤ N (the full GGN σ²I + low rank has rank P ≤ N).
    sigma2: bulk level σ² of the full GGN (per-direction second moment of the g_i).
    """
    ell, gamma, s, above = _spike(lam, P, B, N, sigma2, finite_N)
    edge = np.asarray(ggn_batch_edge(P, B, N, sigma2, finite_N=finite_N), dtype=float)
    sigma2 = np.broadcast_to(np.asarray(sigma2, dtype=float), ell.shape)
    return _out(np.where(above, sigma2 * ell * (1.0 + gamma / s), edge))


def ggn_batch_overlap(lam, P, B, N, sigma2, finite_N=True):
    r"""Squared overlap of a batch-GGN eigenvector with the full-GGN one.

    With the notation of :func:`ggn_batch_outlier` (finite N, Wachter),

    .. math:: |⟨φ', φ⟩|^2 = 1 - \frac{ℓγ}{s(s + γ)}
              \ \ \text{above the threshold of :func:`ggn_batch_outlier`, else 0}

    (1 at B = N). It is d log λ'/d log λ, and with a = 0 (``finite_N=False`` or N = ∞)
    Paul's (2007) (1 − γσ⁴/(λ−σ²)²)/(1 + γσ²/(λ−σ²)).
    """
    ell, gamma, s, above = _spike(lam, P, B, N, sigma2, finite_N)
    out = np.where(above, 1.0 - ell * gamma / (s * (s + gamma)), 0.0)
    return _out(np.where(gamma == 0, 1.0, out))


def ggn_outlier_additive_noise(lam, P, B, N, sigma2):
    r"""Outlier if Thm 7 is read additively: G_batch = G + ε, ε centred MP, independent of G.

    ε = σ²(W − I) with W a white Wishart matrix of ratio γ = P/𝔟 (so E ε = 0 and the bulk
    of G + ε is the MP law σ²W). For G = σ²I + (λ − σ²)vvᵀ the Benaych-Georges–Nadakuditi
    recipe with R_MP(g) = 1/(1 − γg) gives, with t = λ/σ² − 1,

    .. math:: λ' = λ + \frac{γσ^4}{λ - σ^2(1+γ)} \ \ (t > γ + \sqrt γ),
              \qquad λ' = σ^2(1+\sqrt γ)^2 \ \text{otherwise.}

    This is *not* the sample-covariance model (:func:`ggn_batch_outlier`); it is here to
    show what treating the GGN like the Hessian's Theorem 4 would predict. Its shift decays
    like γσ⁴/λ, whereas the sample-covariance shift tends to γσ². It is not the paper's
    printed Eq. 18, which could not be retrieved (see the module docstring).
    """
    lam, sigma2 = _check_full_ggn_eig(lam, sigma2)
    gamma = np.asarray(ggn_ratio(P, B, N), dtype=float)
    lam, gamma, sigma2 = np.broadcast_arrays(lam, gamma, sigma2)
    t = lam / sigma2 - 1.0
    above = t > gamma + np.sqrt(gamma)
    safe = np.where(above, t - gamma, 1.0)
    moved = lam + sigma2 * gamma / safe
    return _out(np.where(above, moved, sigma2 * (1.0 + np.sqrt(gamma)) ** 2))


def per_sample_ggn_vectors(G_full, N: int, seed=None) -> np.ndarray:
    r"""N per-sample vectors g_i whose GGN (1/N) Σ g_i g_iᵀ equals ``G_full`` exactly.

    g_i = G^{1/2} z_i with Gaussian z_i whitened so that (1/N) Σ z_i z_iᵀ = I (N ≥ P).
    A synthetic data set for the model of this module: its full GGN is known exactly, and
    sub-batches of it are exact mini-batch GGNs (see :func:`batch_ggn_model`).

    Returns
    -------
    ndarray of shape (N, P).
    """
    G = np.asarray(G_full, dtype=float)
    if G.ndim != 2 or G.shape[0] != G.shape[1] or not np.allclose(G, G.T):
        raise ValueError(f"G_full must be a symmetric P×P matrix, got shape {G.shape}")
    P = G.shape[0]
    if not isinstance(N, (int, np.integer)) or isinstance(N, bool) or N < P:
        raise ValueError(f"N (number of samples) must be an integer >= P={P}, got {N!r}")
    w, U = np.linalg.eigh(G)
    if w[0] < -1e-10 * max(1.0, abs(w[-1])):
        raise ValueError("G_full must be positive semi-definite")
    root = (U * np.sqrt(np.clip(w, 0.0, None))) @ U.T
    Z = as_generator(seed).standard_normal((P, N))
    L = np.linalg.cholesky(Z @ Z.T / N)
    return (root @ np.linalg.solve(L, Z)).T


def batch_ggn_model(B, *, per_sample=None, G_full=None, seed=None) -> np.ndarray:
    r"""Sample a batch GGN (1/B) Σ_{i∈batch} g_i g_iᵀ.

    ``per_sample`` (N×P array of the g_i): B of the N rows drawn without replacement, the
    exact mini-batch GGN of that data set. ``G_full`` (P×P, positive semi-definite):
    B fresh Gaussian draws g ~ N(0, G_full) (N = ∞, Remark 6), a spiked Wishart matrix.
    """
    rng = as_generator(seed)
    if (per_sample is None) == (G_full is None):
        raise ValueError("give exactly one of per_sample or G_full")
    if not isinstance(B, (int, np.integer)) or isinstance(B, bool) or B <= 0:
        raise ValueError(f"B (batch size) must be a positive integer, got {B!r}")
    if per_sample is not None:
        X = np.asarray(per_sample, dtype=float)
        if X.ndim != 2:
            raise ValueError(f"per_sample must be an N×P array of vectors g_i, got {X.shape}")
        if B > X.shape[0]:
            raise ValueError(f"B (batch size) must satisfy 0 < B <= N={X.shape[0]}, got {B}")
        Xb = X[rng.choice(X.shape[0], size=int(B), replace=False)]
    else:
        G = np.asarray(G_full, dtype=float)
        if G.ndim != 2 or G.shape[0] != G.shape[1] or not np.allclose(G, G.T):
            raise ValueError(f"G_full must be a symmetric P×P matrix, got shape {G.shape}")
        w, U = np.linalg.eigh(G)
        if w[0] < -1e-10 * max(1.0, abs(w[-1])):
            raise ValueError("G_full must be positive semi-definite")
        Xb = rng.standard_normal((int(B), G.shape[0])) @ (U * np.sqrt(np.clip(w, 0.0, None))).T
    return Xb.T @ Xb / B
