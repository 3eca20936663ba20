"""Free additive convolution (Pastur equation, Belinschi–Bercovici) vs closed forms and simulation.

Tolerances: the solvers against a closed form, < 1e−6 pointwise away from the edges; the
eigenvalue CDF of one n×n draw against the limiting CDF, Kolmogorov distance < 10/n
(eigenvalues are rigid, so the distance is ~3–4/n, not the i.i.d. 1/√n; measured n·KS ≤ 4.1
over 30 GOE draws).
"""

import numpy as np
import pytest
from scipy.integrate import cumulative_trapezoid, trapezoid
from spectra import ks_to_density

from rmtlr.rmt.ensembles import haar_orthonormal, wigner
from rmtlr.rmt.freeconv import free_convolution_density, free_convolution_stieltjes
from rmtlr.rmt.laws import semicircle_pdf


def _two_point(n):
    """90% of the eigenvalues at 0, 10% at 3."""
    return np.where(np.arange(n) < 0.9 * n, 0.0, 3.0)


def test_pastur_equation_vs_closed_form_and_simulation():
    # A = 0 gives the semicircle itself.
    x = np.linspace(-2.5, 2.5, 501)
    away = np.abs(np.abs(x) - 2) > 0.02
    rho0 = free_convolution_density(x, np.zeros(10), sigma=1.0, eta=1e-9)
    assert np.abs(rho0 - semicircle_pdf(x))[away].max() < 1e-6
    n = 2000
    a = _two_point(n)
    eigs = np.linalg.eigvalsh(np.diag(a) + wigner(n, 1.0, seed=3))
    grid = np.linspace(-2.5, 5.5, 4001)
    rho = free_convolution_density(grid, a, sigma=1.0, eta=1e-8)
    assert trapezoid(rho, grid) == pytest.approx(1.0, abs=1e-4)
    assert ks_to_density(eigs, grid, rho) < 10 / n


def test_belinschi_bercovici_matches_pastur_and_simulation():
    # With B = semicircle quantiles the two solvers must agree (up to the O(1/n) difference
    # between the quantile measure and the semicircle, here smoothed by η = 0.05).
    nb = 4000
    q = (np.arange(nb) + 0.5) / nb
    grid_q = np.linspace(-2, 2, 20001)
    cdf = cumulative_trapezoid(semicircle_pdf(grid_q), grid_q, initial=0)
    b_sc = np.interp(q, cdf / cdf[-1], grid_q)
    a = _two_point(500)
    z = np.linspace(-2.5, 5.5, 41) + 0.05j
    G_bb = free_convolution_stieltjes(z, a, b_sc)
    G_p = free_convolution_stieltjes(z, a, sigma=1.0)
    assert np.abs(G_bb - G_p).max() < 1e-3
    # A + O B Oᵀ, B Marchenko–Pastur(0.5) eigenvalues, O Haar: the prediction uses the very
    # spectra of the simulated A and B, so only the O(1/N) free-independence error remains.
    n = 1500
    a = _two_point(n)
    rng = np.random.default_rng(4)
    Xw = rng.standard_normal((n, 2 * n))
    b = np.linalg.eigvalsh(Xw @ Xw.T / (2 * n))
    O = haar_orthonormal(n, n, seed=5)
    eigs = np.linalg.eigvalsh(np.diag(a) + (O * b) @ O.T)
    grid = np.linspace(-0.5, 7.0, 3001)
    rho = free_convolution_density(grid, a, b, eta=1e-3)
    assert trapezoid(rho, grid) == pytest.approx(1.0, abs=2e-3)
    assert ks_to_density(eigs, grid, rho) < 10 / n


def test_bad_input_raises():
    with pytest.raises(ValueError, match="exactly one"):
        free_convolution_density([0.0], [1.0], [1.0], sigma=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        free_convolution_density([0.0], [1.0])
    with pytest.raises(ValueError, match="sigma"):
        free_convolution_density([0.0], [1.0], sigma=-1.0)
    with pytest.raises(ValueError, match="Im z"):
        free_convolution_stieltjes([1.0], [1.0], sigma=1.0)
    with pytest.raises(TypeError, match="sigma"):
        free_convolution_density([0.0], [1.0], sigma="1")
    with pytest.raises(TypeError, match="a"):
        free_convolution_density([0.0], ["1.0"], sigma=1.0)
