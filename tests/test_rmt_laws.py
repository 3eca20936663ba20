"""Limiting laws: mass, edges, Stieltjes transforms vs quadrature, simulation, Tracy–Widom."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from rmtlr.rmt import laws
from rmtlr.rmt.ensembles import wigner, wishart

SIGMAS = [0.5, 1.0, 2.3]
QS = [0.25, 0.5, 1.0, 2.0, 4.0]


def _quad_stieltjes(pdf, lo, hi, z):
    """G(z) = ∫ρ(x)/(z − x)dx by adaptive quadrature, real and imaginary parts separately."""
    re = quad(lambda x: (pdf(x) / (z - x)).real, lo, hi, limit=400)[0]
    im = quad(lambda x: (pdf(x) / (z - x)).imag, lo, hi, limit=400)[0]
    return re + 1j * im


# Points in C⁺ (including the left half, where √((z−a)(z−b)) would pick the wrong branch)
# and real points outside the support, in units of the spectral scale.
def _ks(eigs, cdf):
    """Kolmogorov distance sup|F_N − F|, comparing both one-sided limits at every jump.

    Both limits matter at an atom (p − n tied zero eigenvalues against the MP atom).
    """
    e = np.sort(eigs)
    right = np.searchsorted(e, e, side="right") / e.size
    left = np.searchsorted(e, e, side="left") / e.size
    return max(np.max(np.abs(right - cdf(e))), np.max(np.abs(left - cdf(np.nextafter(e, -np.inf)))))


OFF_AXIS = [0.3 + 0.2j, -1.1 + 0.05j, 2.5 + 1.0j, -3.0 + 0.5j, 0.01 + 3.0j]


@pytest.mark.parametrize("sigma", SIGMAS)
def test_semicircle_density_mass_edges_and_cdf(sigma):
    e = laws.semicircle_edge(sigma)
    assert e == pytest.approx(2 * sigma)
    assert quad(lambda x: laws.semicircle_pdf(x, sigma), -e, e)[0] == pytest.approx(1.0, abs=1e-10)
    assert laws.semicircle_pdf(np.array([-e * 1.001, e * 1.001]), sigma).tolist() == [0.0, 0.0]
    assert laws.semicircle_pdf(0.999 * e, sigma) > 0
    for x in np.linspace(-e, e, 7):
        ref = quad(lambda t: laws.semicircle_pdf(t, sigma), -e, x)[0]
        assert laws.semicircle_cdf(x, sigma) == pytest.approx(ref, abs=1e-10)
    assert laws.semicircle_cdf([-10 * e, 10 * e], sigma).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("q", QS)
@pytest.mark.parametrize("sigma", [0.7, 1.5])
def test_mp_density_mass_edges_atom_and_cdf(q, sigma):
    lo, hi = laws.mp_edges(q, sigma)
    assert (lo, hi) == pytest.approx(
        (sigma**2 * (1 - np.sqrt(q)) ** 2, sigma**2 * (1 + np.sqrt(q)) ** 2)
    )
    mass = quad(lambda x: laws.mp_pdf(x, q, sigma), lo, hi, limit=400)[0]
    assert mass + laws.mp_atom(q) == pytest.approx(1.0, abs=1e-8)
    assert laws.mp_atom(q) == pytest.approx(max(0.0, 1 - 1 / q))
    assert laws.mp_pdf(np.array([lo - 1e-3, hi + 1e-3]), q, sigma).tolist() == [0.0, 0.0]
    for x in np.linspace(lo, hi, 6):
        ref = laws.mp_atom(q) + quad(lambda t: laws.mp_pdf(t, q, sigma), lo, x, limit=400)[0]
        assert laws.mp_cdf(x, q, sigma) == pytest.approx(ref, abs=1e-8)
    assert laws.mp_cdf(-1e-9, q, sigma) == 0.0
    assert laws.mp_cdf(hi + 1, q, sigma) == 1.0


@pytest.mark.parametrize("sigma", SIGMAS)
def test_semicircle_stieltjes_matches_quadrature_branch_and_inversion(sigma):
    e = 2 * sigma
    pts = [sigma * z for z in OFF_AXIS] + [2.5 * sigma, -3.0 * sigma, 10 * sigma]
    for z in pts:
        ref = _quad_stieltjes(lambda x: laws.semicircle_pdf(x, sigma), -e, e, z)
        assert laws.semicircle_stieltjes(z, sigma) == pytest.approx(ref, rel=1e-7, abs=1e-9)
    grid = sigma * (np.linspace(-6, 6, 41)[:, None] + 1j * np.logspace(-6, 2, 17)[None, :])
    g = laws.semicircle_stieltjes(grid, sigma)
    assert np.all(g.imag < 0)
    # The quadratic σ²G² − zG + 1 = 0 holds on the chosen branch, and G ~ 1/z.
    np.testing.assert_allclose(sigma**2 * g**2 - grid * g + 1, 0, atol=1e-9)
    assert laws.semicircle_stieltjes(1e6 * sigma, sigma) * 1e6 * sigma == pytest.approx(
        1.0, rel=1e-9
    )
    x = np.linspace(-0.95 * e, 0.95 * e, 9)
    np.testing.assert_allclose(
        -laws.semicircle_stieltjes(x, sigma).imag / np.pi, laws.semicircle_pdf(x, sigma), rtol=1e-12
    )


@pytest.mark.parametrize("q", QS)
def test_mp_stieltjes_matches_quadrature_with_atom(q):
    sigma = 1.3
    lo, hi = laws.mp_edges(q, sigma)
    scale = sigma**2
    pts = [scale * z for z in OFF_AXIS] + [hi + 0.5 * scale, -scale, 12 * scale]
    if q < 1:
        pts.append(0.5 * lo)  # the gap between 0 and λ₋ is outside the support
    for z in pts:
        ref = _quad_stieltjes(lambda x: laws.mp_pdf(x, q, sigma), lo, hi, z) + laws.mp_atom(q) / z
        assert laws.mp_stieltjes(z, q, sigma) == pytest.approx(ref, rel=1e-7, abs=1e-9)
    grid = scale * (np.linspace(-3, 9, 41)[:, None] + 1j * np.logspace(-6, 2, 17)[None, :])
    g = laws.mp_stieltjes(grid, q, sigma)
    assert np.all(g.imag < 0)
    # Relative residual: next to the atom's pole (q > 1, z → 0) the terms are ~1e6.
    resid = q * sigma**2 * grid * g**2 - (grid - sigma**2 * (1 - q)) * g + 1
    size = 1 + np.abs(q * sigma**2 * grid * g**2) + np.abs((grid - sigma**2 * (1 - q)) * g)
    assert np.max(np.abs(resid) / size) < 1e-10
    x = np.linspace(lo, hi, 11)[1:-1]
    np.testing.assert_allclose(
        -laws.mp_stieltjes(x, q, sigma).imag / np.pi, laws.mp_pdf(x, q, sigma), rtol=1e-10
    )


def test_wigner_simulation_matches_semicircle_and_edge():
    n, sigma = 2000, 1.4
    eigs = np.linalg.eigvalsh(wigner(n, sigma, seed=11))
    # Eigenvalues are rigid: the Kolmogorov distance to the limit law is ~3–4/N (measured
    # N·KS ≤ 4.1 over 30 GOE draws at N = 250 and 1000), so 10/N fails only on a real error.
    assert _ks(eigs, lambda x: laws.semicircle_cdf(x, sigma)) < 10 / n
    # λ_max − 2σ = σN^(−2/3)·TW₁ (mean −1.2, sd 1.3): 5σN^(−2/3) is ≈ 3 sd beyond the mean.
    assert abs(eigs[-1] - laws.semicircle_edge(sigma)) < 5 * laws.edge_fluctuation_scale(n, sigma)
    assert abs(eigs[0] + laws.semicircle_edge(sigma)) < 5 * laws.edge_fluctuation_scale(n, sigma)


@pytest.mark.parametrize("p, n", [(1000, 2000), (2000, 1000)])
def test_wishart_simulation_matches_mp_and_edges(p, n):
    sigma = 0.8
    q = p / n
    eigs = np.linalg.eigvalsh(wishart(p, n, sigma, seed=5))
    # Same rigidity argument as for Wigner; the atom (q > 1) is exact: p − n zero eigenvalues
    # computed to ~1e−13, which the CDF counts at x ≥ 0 after clipping rounding noise.
    eigs = np.where(np.abs(eigs) < 1e-9, 0.0, eigs)
    assert _ks(eigs, lambda x: laws.mp_cdf(x, q, sigma)) < 10 / p
    # Johnstone (2001): λ_max of XXᵀ fluctuates on (√n + √p)(1/√n + 1/√p)^{1/3}, divided
    # here by n; 5 of these units bounds the TW₁ fluctuation as for Wigner.
    scale = sigma**2 * (np.sqrt(n) + np.sqrt(p)) * (1 / np.sqrt(n) + 1 / np.sqrt(p)) ** (1 / 3) / n
    assert abs(eigs[-1] - laws.mp_edges(q, sigma)[1]) < 5 * scale


def test_empirical_stieltjes_equals_resolvent_trace_and_tends_to_semicircle():
    n = 1000
    m = wigner(n, 1.0, seed=3)
    eigs = np.linalg.eigvalsh(m)
    z = np.array([0.4 + 0.5j, -1.5 + 0.5j, 3.0 + 0.5j])
    for zi, gi in zip(z, laws.empirical_stieltjes(eigs, z)):
        assert gi == pytest.approx(np.trace(np.linalg.inv(zi * np.eye(n) - m)) / n, rel=1e-9)
    # |∫f d(μ_N − μ)| ≤ TV(f)·KS; Re and Im of 1/(z − x) each have total variation 2/η,
    # and KS < 10/N (previous tests), so |G_N − G| < 2·(2/η)·10/N.
    eta = 0.5
    bound = 2 * (2 / eta) * 10 / n
    assert np.max(np.abs(laws.empirical_stieltjes(eigs, z) - laws.semicircle_stieltjes(z))) < bound


def test_tracy_widom_cdf_reproduces_published_moments_and_quantiles():
    s = np.linspace(-8.0, 8.0, 460)
    for beta, mean, sd in [(1, laws.TW1_MEAN, laws.TW1_SD), (2, laws.TW2_MEAN, laws.TW2_SD)]:
        f = laws.tracy_widom_cdf(s, beta)
        # Tails beyond the grid carry < 1e−6 of mass, which moves the moments by < 1e−5.
        assert f[0] < 1e-6 and f[-1] > 1 - 1e-6 and np.all(np.diff(f) >= -1e-12)
        # Moments by parts from the CDF: E s = s_max − ∫F ds − s_min·F(s_min), etc.; the
        # trapezoid error at spacing 0.035 is ~1e−4.
        m1 = s[-1] - np.trapezoid(f, s)
        m2 = s[-1] ** 2 - np.trapezoid(2 * s * f, s)
        assert m1 == pytest.approx(mean, abs=1e-3)
        assert np.sqrt(m2 - m1**2) == pytest.approx(sd, abs=1e-3)
    # Quantiles tabulated by Bornemann (2010, Table 5) and in the TracyWidom package.
    np.testing.assert_allclose(
        laws.tracy_widom_cdf([-3.180, 0.979, 2.023], 1), [0.05, 0.95, 0.99], atol=2e-4
    )
    assert laws.tracy_widom_cdf(-0.232, 2) == pytest.approx(0.95, abs=2e-4)


def test_goe_edge_fluctuations_follow_tw1():
    n, draws, sigma = 150, 300, 1.0
    rescaled = np.array(
        [
            (np.linalg.eigvalsh(wigner(n, sigma, seed=100 + k))[-1] - 2 * sigma)
            / laws.edge_fluctuation_scale(n, sigma)
            for k in range(draws)
        ]
    )
    # Finite-N bias of the mean is ≈ −0.1 at N = 100–150 (the GOE tridiagonal model gives a
    # mean of −1.33 at N = 100 and −1.22 at N = 1000 over 2000 draws);
    # sampling sd of the mean is 1.27/√300 ≈ 0.073, of the sd ≈ 1.27/√600 ≈ 0.052.
    assert rescaled.mean() == pytest.approx(
        laws.TW1_MEAN, abs=0.15 + 4 * laws.TW1_SD / np.sqrt(draws)
    )
    assert rescaled.std() == pytest.approx(laws.TW1_SD, abs=4 * laws.TW1_SD / np.sqrt(2 * draws))
    # The complex-case law would put the mean at −1.77: the test distinguishes β.
    assert abs(rescaled.mean() - laws.TW2_MEAN) > 0.3


@settings(max_examples=40, deadline=None)
@given(sigma=st.floats(0.01, 100.0), c=st.floats(0.01, 100.0), x=st.floats(-1.5, 1.5))
def test_scaling_sigma_rescales_the_semicircle(sigma, c, x):
    assert laws.semicircle_edge(c * sigma) == pytest.approx(
        c * laws.semicircle_edge(sigma), rel=1e-12
    )
    assert c * laws.semicircle_pdf(c * x * sigma, c * sigma) == pytest.approx(
        laws.semicircle_pdf(x * sigma, sigma), rel=1e-9, abs=1e-12
    )
    z = x * sigma + 0.3j * sigma
    assert c * laws.semicircle_stieltjes(c * z, c * sigma) == pytest.approx(
        laws.semicircle_stieltjes(z, sigma), rel=1e-9
    )


@settings(max_examples=40, deadline=None)
@given(q=st.floats(0.05, 20.0), sigma=st.floats(0.05, 20.0), u=st.floats(0.0, 1.0))
def test_mp_scaling_and_cdf_monotone(q, sigma, u):
    lo, hi = laws.mp_edges(q, sigma)
    lo1, hi1 = laws.mp_edges(q, 1.0)
    assert (lo, hi) == pytest.approx((sigma**2 * lo1, sigma**2 * hi1), rel=1e-12)
    x = lo + u * (hi - lo)
    assert laws.mp_cdf(x, q, sigma) == pytest.approx(laws.mp_cdf(x / sigma**2, q, 1.0), abs=1e-12)
    assert laws.mp_cdf(x, q, sigma) <= laws.mp_cdf(x + 0.01 * (hi - lo), q, sigma) + 1e-12


def test_bad_input_raises():
    with pytest.raises(ValueError, match="sigma"):
        laws.semicircle_pdf(0.0, sigma=0)
    with pytest.raises(ValueError, match="sigma"):
        laws.semicircle_edge(-1)
    with pytest.raises(ValueError, match="sigma"):
        laws.semicircle_stieltjes(1j, sigma=float("nan"))
    with pytest.raises(ValueError, match="q"):
        laws.mp_pdf(1.0, q=0)
    with pytest.raises(ValueError, match="q"):
        laws.mp_edges(-2)
    with pytest.raises(ValueError, match="x"):
        laws.semicircle_cdf(float("nan"))
    with pytest.raises(ValueError, match="z"):
        laws.semicircle_stieltjes(complex("inf"))
    with pytest.raises(ValueError, match="z"):
        laws.mp_stieltjes(0.0, q=2.0)
    with pytest.raises(ValueError, match="eigs"):
        laws.empirical_stieltjes([], 1j)
    with pytest.raises(ValueError, match="z"):
        laws.empirical_stieltjes([0.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="n"):
        laws.edge_fluctuation_scale(0)
    with pytest.raises(ValueError, match="beta"):
        laws.tracy_widom_cdf(0.0, beta=4)
    with pytest.raises(TypeError, match="sigma"):
        laws.semicircle_pdf(0.0, sigma="2")
    with pytest.raises(TypeError, match="x"):
        laws.semicircle_cdf("0.5")
    with pytest.raises(TypeError, match="q"):
        laws.mp_pdf(1.0, q=True)
    with pytest.raises(ValueError, match="nodes must be an integer >= 10, got 60.5"):
        laws.tracy_widom_cdf(0.0, nodes=60.5)
    with pytest.raises(TypeError, match="z"):
        laws.semicircle_stieltjes("1j")


# Left tails for s → −∞, published with their constants: F₂(s) ≈ τ₂|s|^(−1/8)e^(−|s|³/12)
# (1 + 3/(64|s|³)) (Deift, Its & Krasovsky 2008) and F₁(s) ≈ τ₁|s|^(−1/16)
# e^(−|s|³/24 − |s|^(3/2)/(3√2)) (Baik, Buckingham & DiFranco 2008), with ζ′(−1) =
# 1/12 − log(Glaisher–Kinkelin A), A = 1.2824271291006226.
_ZP = 1 / 12 - np.log(1.2824271291006226)


def _tw_left_tail(s, beta):
    a = -np.asarray(s, dtype=float)
    if beta == 2:
        return 2 ** (1 / 24) * np.exp(_ZP) * a ** (-1 / 8) * np.exp(-(a**3) / 12) * (
            1 + 3 / (64 * a**3)
        )
    return 2 ** (-11 / 48) * np.exp(_ZP / 2) * a ** (-1 / 16) * np.exp(
        -(a**3) / 24 - a**1.5 / (3 * np.sqrt(2))
    )


@pytest.mark.parametrize("beta", [1, 2])
def test_tracy_widom_cdf_is_monotone_and_vanishes_in_the_far_left_tail(beta):
    # The quadrature interval used to be (s, s + 16), which for s < −8 misses where the Airy
    # kernel lives: F₁(−30) came out as 0.135 and the CDF fell as s decreased.
    s = np.linspace(-40.0, 10.0, 2001)
    f = laws.tracy_widom_cdf(s, beta)
    assert np.all(np.diff(f) >= 0.0)
    assert f[0] == 0.0 and laws.tracy_widom_cdf(-30.0, beta) < 1e-300
    assert f[-1] == pytest.approx(1.0, abs=1e-9)  # 1 − F₁(10) ≈ 2e−11


@pytest.mark.parametrize("beta", [1, 2])
def test_tracy_widom_determinant_approaches_the_published_left_tails(beta):
    # The tails' next terms are c·|s|^(−3/2) (β = 1) and O(|s|^(−6)) (β = 2): the Fredholm
    # determinant (used for s ≥ −7) must approach them at exactly that rate.
    s = np.array([-4.0, -5.0, -6.0, -7.0])
    rel = laws.tracy_widom_cdf(s, beta) / _tw_left_tail(s, beta) - 1
    if beta == 1:
        c = rel * (-s) ** 1.5
        assert np.all(np.abs(c - c.mean()) < 0.1 * abs(c.mean())), c
        assert 0.01 < abs(c.mean()) < 0.1
    else:
        assert np.all(np.abs(rel) * s**6 < 1.0), rel * s**6


@pytest.mark.parametrize("beta, rtol", [(1, 2e-3), (2, 1e-5)])
def test_tracy_widom_cdf_below_minus_7_follows_the_tail(beta, rtol):
    # Below s = −7 the tail formula, continued from the determinant at s = −7, is used; it
    # stays within the tails' relative error at s = −7 of the published formula.
    s = np.array([-7.5, -10.0, -12.0, -20.0])
    assert laws.tracy_widom_cdf(s, beta) == pytest.approx(_tw_left_tail(s, beta), rel=rtol)
