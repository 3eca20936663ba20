r"""Random-matrix ensembles used throughout the book (seeded NumPy samplers).

Normalisations are chosen so that spectra have O(1) limits as the size n grows:

- Wigner (GOE): off-diagonal variance σ²/n, diagonal 2σ²/n; semicircle on [−2σ, 2σ].
- Wishart: W = XXᵀ/n with X p×n of i.i.d. N(0, σ²); Marchenko–Pastur with ratio q = p/n.
- Variance profile: independent symmetric entries with E X_ij² = S_ij/n (the paper's
  "field-dependent" noise, Sec. 3; Ajanki, Erdős & Krüger 2017).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from rmtlr.rmt.validation import integer, nonnegative, real

__all__ = [
    "Seed",
    "as_generator",
    "block_profile",
    "haar_orthonormal",
    "spiked",
    "variance_profile_matrix",
    "wigner",
    "wishart",
]

#: What every sampler accepts as ``seed``: an int ≥ 0, a NumPy Generator, or None (fresh
#: entropy).
Seed = int | np.integer | np.random.Generator | None


def as_generator(seed: Seed = None) -> np.random.Generator:
    """Make a :class:`numpy.random.Generator` from an int seed, a Generator, or None.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        An int ≥ 0 seeds a new generator; a Generator is returned as it is (so that a
        caller can draw several matrices from one stream); None uses fresh OS entropy.

    Returns
    -------
    numpy.random.Generator
        The generator.

    Raises
    ------
    TypeError
        If ``seed`` is neither an int, a Generator nor None (e.g. a float or a list).
    ValueError
        If ``seed`` is a negative int.

    Examples
    --------
    >>> int(as_generator(0).integers(10)) == int(as_generator(0).integers(10))
    True
    """
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed) if seed is None else seed
    return np.random.default_rng(integer("seed", seed, lo=0))


def _check_scale(name: str, sigma: float) -> float:
    arr = nonnegative(name, sigma)
    if arr.ndim != 0:
        raise TypeError(f"{name} must be a single number, got an array of shape {arr.shape}")
    return float(arr)


def wigner(n: int, sigma: float = 1.0, seed: Seed = None) -> np.ndarray:
    r"""GOE matrix H = σ(G + Gᵀ)/sqrt(2n), G i.i.d. N(0, 1).

    E H_ij² = σ²/n off the diagonal and 2σ²/n on it; the eigenvalue distribution tends
    to the semicircle on [−2σ, 2σ] (Wigner 1958), the paper's model for the batch noise ε
    (Sec. 3, Thm 3).

    Parameters
    ----------
    n : int
        Size n ≥ 1.
    sigma : float
        Scale σ ≥ 0.
    seed : int, numpy.random.Generator or None
        Randomness (see :func:`as_generator`).

    Returns
    -------
    numpy.ndarray
        The symmetric n×n matrix.

    Raises
    ------
    TypeError
        If ``n`` or ``sigma`` is not a real number.
    ValueError
        If ``n`` is not a whole number ≥ 1 or ``sigma`` is not finite and ≥ 0.

    Examples
    --------
    >>> H = wigner(500, seed=0)
    >>> bool(abs(np.linalg.eigvalsh(H)[-1] - 2.0) < 0.1)  # edge 2σ, TW scale 500^(−2/3)
    True
    """
    n = integer("n", n)
    sigma = _check_scale("sigma", sigma)
    g = as_generator(seed).standard_normal((n, n))
    return sigma * (g + g.T) / np.sqrt(2.0 * n)


def wishart(p: int, n: int, sigma: float = 1.0, seed: Seed = None) -> np.ndarray:
    r"""Sample covariance W = XXᵀ/n, X p×n with i.i.d. N(0, σ²) entries.

    The spectrum tends to Marchenko–Pastur with ratio q = p/n, supported on
    [σ²(1−√q)², σ²(1+√q)²] plus an atom of mass 1 − 1/q at 0 when q > 1. This is the
    noise model of the Gauss–Newton matrix (Thm 7).

    Parameters
    ----------
    p : int
        Dimension p ≥ 1 (W is p×p).
    n : int
        Number of samples n ≥ 1.
    sigma : float
        Entry standard deviation σ ≥ 0 of X.
    seed : int, numpy.random.Generator or None
        Randomness (see :func:`as_generator`).

    Returns
    -------
    numpy.ndarray
        The p×p matrix W.

    Raises
    ------
    TypeError
        If ``p``, ``n`` or ``sigma`` is not a real number.
    ValueError
        If ``p`` or ``n`` is not a whole number ≥ 1 or ``sigma`` is not finite and ≥ 0.

    Examples
    --------
    >>> wishart(3, 10, seed=0).shape
    (3, 3)
    """
    p = integer("p", p)
    n = integer("n", n)
    sigma = _check_scale("sigma", sigma)
    x = sigma * as_generator(seed).standard_normal((p, n))
    return x @ x.T / n


def haar_orthonormal(n: int, k: int, seed: Seed = None) -> np.ndarray:
    """n×k matrix with orthonormal columns, uniformly (Haar) distributed.

    Parameters
    ----------
    n : int
        Number of rows n ≥ 1.
    k : int
        Number of columns, 1 ≤ k ≤ n.
    seed : int, numpy.random.Generator or None
        Randomness (see :func:`as_generator`).

    Returns
    -------
    numpy.ndarray
        The n×k matrix V with VᵀV = I.

    Raises
    ------
    TypeError
        If ``n`` or ``k`` is not a real number.
    ValueError
        If ``n`` or ``k`` is not a whole number ≥ 1, or k > n.

    Examples
    --------
    >>> V = haar_orthonormal(5, 2, seed=0)
    >>> bool(np.allclose(V.T @ V, np.eye(2)))
    True
    """
    n = integer("n", n)
    k = integer("k", k)
    if k > n:
        raise ValueError(f"k must satisfy 1 <= k <= n, got k={k} > n={n}")
    q, r = np.linalg.qr(as_generator(seed).standard_normal((n, k)))
    return q * np.sign(np.diag(r))


def spiked(
    A_eigs: ArrayLike,
    noise: ArrayLike,
    vectors: ArrayLike | None = None,
    seed: Seed = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Low-rank signal plus noise, M = Σ_i θ_i v_i v_iᵀ + noise (Lemma 5's model).

    Parameters
    ----------
    A_eigs : array_like
        The k signal eigenvalues θ_i (any sign).
    noise : array_like
        n×n symmetric noise matrix (e.g. :func:`wigner`).
    vectors : array_like, optional
        n×k orthonormal signal vectors; default Haar-random (delocalised). A delocalised
        v keeps the outlier fluctuations universal: for a localised v (e.g. a basis
        vector) and non-Gaussian noise they depend on the entries' fourth cumulant
        (Capitaine, Donati-Martin & Féral 2009).
    seed : int, numpy.random.Generator or None
        Randomness of the default vectors (see :func:`as_generator`).

    Returns
    -------
    tuple of numpy.ndarray
        (M, V): the matrix and the n×k signal vectors.

    Raises
    ------
    TypeError
        If an array is not real.
    ValueError
        If ``noise`` is not square and symmetric, ``A_eigs`` is not a finite 1-d sequence,
        or ``vectors`` has the wrong number of columns or is not orthonormal.

    Examples
    --------
    >>> M, V = spiked([3.0], np.zeros((4, 4)), seed=0)
    >>> round(float(np.linalg.eigvalsh(M)[-1]), 12)
    3.0
    """
    noise = real("noise", noise)
    if noise.ndim != 2 or noise.shape[0] != noise.shape[1]:
        raise ValueError(f"noise must be a square matrix, got shape {noise.shape}")
    if not np.allclose(noise, noise.T, atol=1e-12 * max(1.0, np.abs(noise).max())):
        raise ValueError("noise must be symmetric")
    theta = np.atleast_1d(real("A_eigs", A_eigs))
    if theta.ndim != 1 or not np.all(np.isfinite(theta)):
        raise ValueError("A_eigs must be a finite 1-d sequence of eigenvalues")
    n = noise.shape[0]
    if vectors is None:
        vectors = haar_orthonormal(n, theta.size, seed)
    vectors = real("vectors", vectors).reshape(n, -1)
    if vectors.shape[1] != theta.size:
        raise ValueError(
            f"vectors must have {theta.size} columns (one per eigenvalue), got {vectors.shape[1]}"
        )
    if not np.allclose(vectors.T @ vectors, np.eye(theta.size), atol=1e-8):
        raise ValueError("vectors must have orthonormal columns")
    return noise + (vectors * theta) @ vectors.T, vectors


def block_profile(S_blocks: ArrayLike, fractions: ArrayLike, n: int) -> np.ndarray:
    r"""Expand a K×K block variance profile to n×n.

    Block k holds a fraction ``fractions[k]`` of the n indices (rounded down, the last block
    takes the remainder); entries in block (k, l) have variance S_blocks[k, l]/n.

    Parameters
    ----------
    S_blocks : array_like
        K×K block variances.
    fractions : array_like
        K positive block fractions summing to 1.
    n : int
        Size n ≥ 1 of the expanded profile.

    Returns
    -------
    numpy.ndarray
        The n×n profile S.

    Raises
    ------
    TypeError
        If ``n`` is not a real number or an array is not real.
    ValueError
        If ``n`` is not a whole number ≥ 1, the shapes do not match, the fractions are not positive or do not sum to 1, or
        ``n`` is too small to give every block an index.

    Examples
    --------
    >>> block_profile([[1.0, 0.2], [0.2, 3.0]], [0.5, 0.5], 4)
    array([[1. , 1. , 0.2, 0.2],
           [1. , 1. , 0.2, 0.2],
           [0.2, 0.2, 3. , 3. ],
           [0.2, 0.2, 3. , 3. ]])
    """
    n = integer("n", n)
    S_blocks = real("S_blocks", S_blocks)
    fr = real("fractions", fractions)
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


def variance_profile_matrix(S: ArrayLike, seed: Seed = None) -> np.ndarray:
    r"""Symmetric random matrix with independent Gaussian entries, E X_ij² = S_ij/n.

    This is a Wigner-type matrix with variance profile S (the "field-dependent" noise of
    Sec. 3): its limiting density solves the vector Dyson equation
    −1/m_i = z + (1/n) Σ_j S_ij m_j (Ajanki, Erdős & Krüger 2017; see
    :mod:`rmtlr.rmt.dyson`), and it is the semicircle when every row of S has the same
    mean (generalised Wigner, the paper's Thm 3 (ii)).

    Parameters
    ----------
    S : array_like
        n×n symmetric array with non-negative entries.
    seed : int, numpy.random.Generator or None
        Randomness (see :func:`as_generator`).

    Returns
    -------
    numpy.ndarray
        The symmetric n×n matrix.

    Raises
    ------
    TypeError
        If ``S`` is not real.
    ValueError
        If ``S`` is not square, symmetric, finite and non-negative.

    Examples
    --------
    >>> X = variance_profile_matrix(np.ones((300, 300)), seed=0)  # a plain Wigner matrix
    >>> bool(abs(np.linalg.eigvalsh(X)[-1] - 2.0) < 0.15)
    True
    """
    S = real("S (variance profile)", S)
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
