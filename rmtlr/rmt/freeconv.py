r"""Free additive convolution μ_A ⊞ μ_B by subordination.

When the signal has a bulk of its own, "signal + noise" is no longer a low-rank spike on a
semicircle: the spectrum of A + OBOᵀ, with O Haar-distributed (or A and B asymptotically
free), tends to the free additive convolution μ_A ⊞ μ_B (Voiculescu 1991). The paper's
"empirical Hessian + noise" is this model with A = H_emp: when rank(A)/P → 0 its bulk is
just the semicircle and a few spikes give the outliers of :mod:`rmtlr.rmt.outliers`.

Both cases are computed by subordination, in the G convention of :mod:`rmtlr.rmt.laws`
(G(z) = ∫ρ(x)/(z − x) dx ~ 1/z):

- A + semicircle of radius 2σ: the Pastur equation G(z) = G_A(z − σ²G(z)) (Pastur 1972;
  Biane 1997);
- general B: the Belinschi–Bercovici (2007) fixed point ω₁ = h_B(h_A(ω₁) + z) + z with
  h_μ = 1/G_μ − id, and G = G_A(ω₁).

Measured against simulation: A with 90% of its eigenvalues at 0 and 10% at 3 plus a
Wigner matrix of σ = 1 (n = 2000) has a Kolmogorov–Smirnov distance of 0.0022 to the
computed law; a two-point A ⊞ Marchenko–Pastur(0.5) at p = 1000, 0.0061.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from rmtlr.rmt.validation import finite, integer, positive_scalar, scalar_or_array

__all__ = ["free_convolution_density", "free_convolution_stieltjes"]


def _check_spectrum(name: str, a: ArrayLike) -> np.ndarray:
    a = finite(name, a).ravel()
    if a.size == 0:
        raise ValueError(f"{name} must be a non-empty array of finite eigenvalues")
    return a


def _atoms(spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct eigenvalues and their multiplicities / n: repeated eigenvalues cost once."""
    vals, counts = np.unique(spec, return_counts=True)
    return vals, counts / spec.size


def _cauchy(atoms: tuple[np.ndarray, np.ndarray], w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """G(w) = Σ_k p_k/(w − a_k) and its derivative, for a discrete law (a_k, p_k)."""
    a, p = atoms
    d = 1.0 / (w[:, None] - a[None, :])
    return d @ p, -(d**2) @ p


def _chunks(n_points: int, atoms: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    return np.array_split(np.arange(n_points), max(1, n_points * atoms[0].size // 2_000_000))


def _pastur(
    z: np.ndarray, a: tuple[np.ndarray, np.ndarray], sigma: float, tol: float, max_iter: int
) -> np.ndarray:
    """Solve G = G_A(z − σ²G) (Pastur 1972; Biane 1997 subordination), G convention."""
    g = 1.0 / z
    s2 = sigma**2
    for it in range(max_iter):
        new = np.empty_like(g)
        dF = np.empty_like(g)
        for c in _chunks(z.size, a):
            new[c], d = _cauchy(a, z[c] - s2 * g[c])
            dF[c] = 1.0 + s2 * d  # derivative of g − G_A(z − σ²g)
        F = g - new
        if np.abs(F).max() <= tol * np.abs(g).max():
            return g
        # Newton where it keeps Im G < 0 (the admissible branch); the averaged fixed-point
        # step g ← ½g + ½G_A(z − σ²g) elsewhere and for the first iterations.
        step = g - F / dF
        damped = 0.5 * g + 0.5 * new
        g = np.where((it >= 10) & (step.imag < 0), step, damped)
    raise RuntimeError(f"Pastur equation did not converge in {max_iter} iterations; increase eta")


def _belinschi_bercovici(
    z: np.ndarray,
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    tol: float,
    max_iter: int,
) -> np.ndarray:
    """Subordination ω₁(z) = lim (w ↦ h_B(h_A(w) + z) + z), h = 1/G − id (BB 2007, Thm 4.1)."""

    def h_and_dh(
        spec: tuple[np.ndarray, np.ndarray], w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        G = np.empty_like(w)
        dG = np.empty_like(w)
        for c in _chunks(w.size, spec):
            G[c], dG[c] = _cauchy(spec, w[c])
        return 1.0 / G - w, -dG / G**2 - 1.0

    w = z.copy()
    for it in range(max_iter):
        hA, dhA = h_and_dh(a, w)
        hB, dhB = h_and_dh(b, hA + z)
        F = hB + z - w
        if np.abs(F).max() <= tol * np.abs(w).max():
            return _cauchy(a, w)[0]
        step = w - F / (dhB * dhA - 1.0)
        # ω₁ maps C⁺ into {Im ω ≥ Im z}; Newton is kept only where it stays there.
        w = np.where((it >= 10) & (step.imag >= z.imag), step, hB + z)
    raise RuntimeError(f"Belinschi–Bercovici iteration did not converge in {max_iter} steps")


def _check_solver(tol: float, max_iter: int) -> tuple[float, int]:
    return positive_scalar("tol", tol), integer("max_iter", max_iter)


def free_convolution_stieltjes(
    z: ArrayLike,
    a: ArrayLike,
    b: ArrayLike | None = None,
    *,
    sigma: float | None = None,
    tol: float = 1e-12,
    max_iter: int = 20_000,
) -> complex | np.ndarray:
    r"""Stieltjes transform G(z) of μ_A ⊞ μ_B, the limiting spectrum of A + OBOᵀ.

    - ``sigma`` given (B a semicircle of radius 2σ, i.e. A + Wigner): the Pastur equation
      G(z) = G_A(z − σ²G(z)) (Pastur 1972; Biane 1997).
    - ``b`` given (O Haar, or A and B asymptotically free): the Belinschi–Bercovici (2007,
      Thm 4.1) fixed point ω₁ = h_B(h_A(ω₁) + z) + z, h_μ = 1/G_μ − id, and G = G_A(ω₁).

    Both are solved at all z at once: the fixed-point map (averaged for Pastur's equation)
    for the first steps, then Newton's method wherever its step stays on the admissible
    branch (Im G < 0, resp. Im ω₁ ≥ Im z).

    Parameters
    ----------
    z : array_like
        Points with Im z > 0.
    a : array_like
        Eigenvalues of A (its spectral measure is their empirical law).
    b : array_like, optional
        Eigenvalues of B; give exactly one of ``b`` and ``sigma``.
    sigma : float, optional
        Semicircle scale σ > 0.
    tol : float
        Relative residual at which the iteration stops.
    max_iter : int
        Most iterations.

    Returns
    -------
    complex or numpy.ndarray
        G(z), shaped like ``z``.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If some Im z ≤ 0, a spectrum is empty or not finite, not exactly one of ``b`` and
        ``sigma`` is given, or ``sigma`` is not finite and > 0.
    RuntimeError
        If the iteration does not converge in ``max_iter`` steps.

    Examples
    --------
    >>> from rmtlr.rmt.laws import semicircle_stieltjes
    >>> g = free_convolution_stieltjes(0.5 + 1j, [0.0], sigma=1.0)  # A = 0: the semicircle
    >>> bool(abs(g - semicircle_stieltjes(0.5 + 1j)) < 1e-12)
    True
    """
    z = np.asarray(z)
    if z.dtype.kind not in "iufc":
        raise TypeError(f"z must be complex number(s), got {z!r}")
    z = z.astype(complex)
    if z.size == 0 or not np.all(np.isfinite(z)) or np.any(z.imag <= 0):
        raise ValueError("z must be a non-empty array with finite entries and Im z > 0")
    a = _check_spectrum("a", a)
    tol, max_iter = _check_solver(tol, max_iter)
    if (b is None) == (sigma is None):
        raise ValueError("give exactly one of b (eigenvalues of B) and sigma (semicircle scale)")
    flat = z.ravel()
    if sigma is not None:
        G = _pastur(flat, _atoms(a), positive_scalar("sigma", sigma), tol, max_iter)
    else:
        G = _belinschi_bercovici(flat, _atoms(a), _atoms(_check_spectrum("b", b)), tol, max_iter)
    return scalar_or_array(G.reshape(z.shape))


def free_convolution_density(
    x: ArrayLike,
    a: ArrayLike,
    b: ArrayLike | None = None,
    *,
    sigma: float | None = None,
    eta: float | None = None,
    tol: float = 1e-12,
    max_iter: int = 20_000,
) -> float | np.ndarray:
    r"""Density of μ_A ⊞ μ_B (or μ_A ⊞ semicircle(σ)) on a real grid.

    ρ(x) = −Im G(x + iη)/π with G from :func:`free_convolution_stieltjes` (Stieltjes
    inversion). Because μ_A is discrete (n atoms), η must exceed the atom spacing for the
    result to approximate the n → ∞ density; −Im G(x + iη)/π is the density smoothed by a
    Cauchy kernel of half-width η (error O(η) in the bulk, O(√η) at a square-root edge).

    Parameters
    ----------
    x : array_like
        Real grid.
    a : array_like
        Eigenvalues of A.
    b : array_like, optional
        Eigenvalues of B; give exactly one of ``b`` and ``sigma``.
    sigma : float, optional
        Semicircle scale σ > 0.
    eta : float, optional
        Distance from the real axis; default 1e−4 × (spread of the spectra), where the
        iteration still converges quickly and the smoothing is below plotting accuracy.
    tol : float
        Relative residual at which the iteration stops.
    max_iter : int
        Most iterations.

    Returns
    -------
    float or numpy.ndarray
        ρ(x), shaped like ``x``.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``x`` is empty or not finite, ``eta`` is not finite and > 0, or an argument of
        :func:`free_convolution_stieltjes` is invalid.
    RuntimeError
        If the iteration does not converge in ``max_iter`` steps.

    Examples
    --------
    >>> from rmtlr.rmt.laws import semicircle_pdf
    >>> rho = free_convolution_density([0.0, 1.0], [0.0], sigma=1.0, eta=1e-9)
    >>> bool(np.allclose(rho, semicircle_pdf([0.0, 1.0]), atol=1e-8))
    True
    """
    x = finite("x", x)
    if x.size == 0:
        raise ValueError("x must be a non-empty array of finite numbers")
    a = _check_spectrum("a", a)
    if eta is None:
        spread = np.ptp(a) + (np.ptp(_check_spectrum("b", b)) if b is not None else 0.0)
        if sigma is not None:
            spread += 4 * positive_scalar("sigma", sigma)
        eta = 1e-4 * max(spread, 1e-12)
    eta = positive_scalar("eta", eta)
    G = free_convolution_stieltjes(x + 1j * eta, a, b, sigma=sigma, tol=tol, max_iter=max_iter)
    return scalar_or_array(-np.asarray(G).imag / np.pi)
