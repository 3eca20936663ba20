"""Random-matrix ensembles used throughout the book (seeded NumPy samplers).

Normalisations follow RMT_NOTES §0.2 so that spectra have O(1) limits:

- Wigner (GOE): off-diagonal variance σ²/n, diagonal 2σ²/n; semicircle on [−2σ, 2σ].
- Wishart: W = X Xᵀ/n with X p×n of i.i.d. N(0, σ²); Marchenko–Pastur with ratio q = p/n.
- Variance profile: independent symmetric entries with E X_ij² = S_ij/n (the paper's
  "field-dependent" noise, Sec. 3; Ajanki–Erdős–Krüger).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "as_generator",
    "block_profile",
    "haar_orthonormal",
    "spiked",
    "variance_profile_matrix",
    "wigner",
    "wishart",
]


def as_generator(seed=None) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from an int seed, a Generator, or None."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _check_size(name: str, n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _check_scale(name: str, sigma) -> float:
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {sigma!r}")
    return sigma


def wigner(n: int, sigma: float = 1.0, seed=None) -> np.ndarray:
    r"""GOE matrix H = σ(G + Gᵀ)/sqrt(2n), G i.i.d. N(0, 1).

    E H_ij² = σ²/n off the diagonal and 2σ²/n on it; the eigenvalue distribution tends
    to the semicircle on [−2σ, 2σ] (Wigner 1958), the paper's model for the batch noise ε
    (Sec. 3, Thm 3).
    """
    n = _check_size("n", n)
    sigma = _check_scale("sigma", sigma)
    g = as_generator(seed).standard_normal((n, n))
    return sigma * (g + g.T) / np.sqrt(2.0 * n)


def wishart(p: int, n: int, sigma: float = 1.0, seed=None) -> np.ndarray:
    r"""Sample covariance W = X Xᵀ/n, X p×n with i.i.d. N(0, σ²) entries.

    The spectrum tends to Marchenko–Pastur with ratio q = p/n, supported on
    [σ²(1−√q)², σ²(1+√q)²] plus an atom of mass 1 − 1/q at 0 when q > 1. This is the
    noise model of the Gauss–Newton matrix (Thm 7).
    """
    p = _check_size("p", p)
    n = _check_size("n", n)
    sigma = _check_scale("sigma", sigma)
    x = sigma * as_generator(seed).standard_normal((p, n))
    return x @ x.T / n


def haar_orthonormal(n: int, k: int, seed=None) -> np.ndarray:
    """n×k matrix with orthonormal columns, uniformly (Haar) distributed."""
    n = _check_size("n", n)
    k = _check_size("k", k)
    if k > n:
        raise ValueError(f"k must satisfy 1 <= k <= n, got k={k} > n={n}")
    q, r = np.linalg.qr(as_generator(seed).standard_normal((n, k)))
    return q * np.sign(np.diag(r))


def spiked(A_eigs, noise: np.ndarray, vectors: np.ndarray | None = None, seed=None):
    r"""Low-rank signal plus noise, M = Σ_i θ_i v_i v_iᵀ + noise (Lemma 5's model).

    Parameters
    ----------
    A_eigs: the k signal eigenvalues θ_i (any sign).
    noise: n×n symmetric noise matrix (e.g. :func:`wigner`).
    vectors: n×k orthonormal signal vectors; default Haar-random (delocalised), which
        keeps outlier fluctuations universal (RMT_NOTES §4.1).

    Returns
    -------
    (M, V): the matrix and the n×k signal vectors.
    """
    noise = np.asarray(noise, dtype=float)
    if noise.ndim != 2 or noise.shape[0] != noise.shape[1]:
        raise ValueError(f"noise must be a square matrix, got shape {noise.shape}")
    if not np.allclose(noise, noise.T, atol=1e-12 * max(1.0, np.abs(noise).max())):
        raise ValueError("noise must be symmetric")
    theta = np.atleast_1d(np.asarray(A_eigs, dtype=float))
    if theta.ndim != 1 or not np.all(np.isfinite(theta)):
        raise ValueError("A_eigs must be a finite 1-d sequence of eigenvalues")
    n = noise.shape[0]
    if vectors is None:
        vectors = haar_orthonormal(n, theta.size, seed)
    vectors = np.asarray(vectors, dtype=float).reshape(n, -1)
    if vectors.shape[1] != theta.size:
        raise ValueError(f"vectors must have {theta.size} columns (one per eigenvalue), got {vectors.shape[1]}")
    if not np.allclose(vectors.T @ vectors, np.eye(theta.size), atol=1e-8):
        raise ValueError("vectors must have orthonormal columns")
    return noise + (vectors * theta) @ vectors.T, vectors


def block_profile(S_blocks, fractions, n: int) -> np.ndarray:
    r"""Expand a K×K block variance profile to n×n.

    Block k holds a fraction ``fractions[k]`` of the n indices (rounded, last block takes
    the remainder); entries in block (k, l) have variance S_blocks[k, l]/n.
    """
    n = _check_size("n", n)
    S_blocks = np.asarray(S_blocks, dtype=float)
    fr = np.asarray(fractions, dtype=float)
    if S_blocks.ndim != 2 or S_blocks.shape[0] != S_blocks.shape[1] or S_blocks.shape[0] != fr.size:
        raise ValueError("S_blocks must be K×K with K = len(fractions)")
    if np.any(fr <= 0) or not np.isclose(fr.sum(), 1.0):
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions!r}")
    sizes = np.floor(fr * n).astype(int)
    sizes[-1] = n - sizes[:-1].sum()
    if np.any(sizes <= 0):
        raise ValueError(f"n={n} is too small for fractions {fractions!r}")
    labels = np.repeat(np.arange(fr.size), sizes)
    return S_blocks[np.ix_(labels, labels)]


def variance_profile_matrix(S, seed=None) -> np.ndarray:
    r"""Symmetric random matrix with independent Gaussian entries, E X_ij² = S_ij/n.

    This is a Wigner-type matrix with variance profile S (the "field-dependent" noise of
    Sec. 3): its limiting density solves the vector Dyson equation
    −1/m_i = z + (1/n) Σ_j S_ij m_j (Ajanki–Erdős–Krüger), and it is the semicircle when
    every row of S has the same mean (generalised Wigner, the paper's Thm 3 (ii)).

    Parameters
    ----------
    S: n×n symmetric array with non-negative entries.
    """
    S = np.asarray(S, dtype=float)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square n×n profile, got shape {S.shape}")
    if np.any(~np.isfinite(S)) or np.any(S < 0):
        raise ValueError("S (variance profile) must be finite with entries >= 0")
    if not np.allclose(S, S.T):
        raise ValueError("S (variance profile) must be symmetric")
    n = S.shape[0]
    g = np.triu(as_generator(seed).standard_normal((n, n)))
    g = g + np.triu(g, 1).T
    return np.sqrt(S / n) * g
