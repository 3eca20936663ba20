"""BBP outliers and overlaps: closed forms, the general BGN recipe, and simulation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmtlr.rmt import laws, outliers
from rmtlr.rmt.ensembles import haar_orthonormal, spiked, wigner, wishart

N = 2000


def _sc(sigma):
    return lambda x: laws.semicircle_stieltjes(x, sigma)


def test_closed_forms_and_continuity_at_threshold():
    sigma = 1.7
    assert outliers.bbp_threshold(sigma) == sigma
    # Lemma 5 meets the edge continuously at θ = σ: σ + σ²/σ = 2σ, overlap 1 − 1 = 0.
    assert outliers.spiked_outlier(sigma * (1 + 1e-12), sigma) == pytest.approx(2 * sigma)
    assert outliers.spiked_overlap(sigma * (1 + 1e-12), sigma) == pytest.approx(0.0, abs=1e-10)
    th = np.array([-4.0, -1.0, 0.0, 1.0, 3.0])
    np.testing.assert_allclose(
        outliers.spiked_outlier(th, sigma),
        [-4 - sigma**2 / 4, -2 * sigma, 2 * sigma, 2 * sigma, 3 + sigma**2 / 3],
    )
    np.testing.assert_allclose(
        outliers.spiked_overlap(th, sigma), [1 - sigma**2 / 16, 0, 0, 0, 1 - sigma**2 / 9]
    )


def test_spiked_wigner_simulation_both_signs():
    sigma, th_up, th_down = 1.0, 2.5, -2.0
    w = wigner(N, sigma, seed=21)
    m, v = spiked([th_up, th_down], w, seed=22)
    vals, vecs = np.linalg.eigh(m)
    for lam, u, th in [(vals[-1], vecs[:, -1], th_up), (vals[0], vecs[:, 0], th_down)]:
        # One draw: outlier sd √(2σ²(1 − σ²/θ²)/N) (Gaussian CLT, Benaych-Georges, Guionnet &
        # Maida 2011), bias O(1/N).
        assert abs(lam - outliers.spiked_outlier(th, sigma)) < 5 * outliers.spiked_outlier_sd(
            th, sigma, N
        )
        ov = (u @ v[:, 0 if th > 0 else 1]) ** 2
        # Overlap sd ≈ 0.5/√N at θ = 2σ and smaller further out (measured: N = 1000, 200
        # draws, sd 0.0156 = 0.49/√N).
        assert abs(ov - outliers.spiked_overlap(th, sigma)) < 5 * 0.5 / np.sqrt(N)


def test_no_outlier_below_bbp_threshold_and_outlier_above():
    sigma = 1.0
    w = wigner(N, sigma, seed=31)
    # |θ − σ| = 0.4 and 0.5 exceed 3σN^(−1/3) ≈ 0.24, outside the critical window.
    for th, seed in [(0.6, 32), (1.5, 33)]:
        m, v = spiked([th], w, seed=seed)
        vals, vecs = np.linalg.eigh(m)
        if th < sigma:
            # Below threshold λ_max sticks to the edge on the Tracy–Widom scale ...
            assert abs(vals[-1] - 2 * sigma) < 5 * laws.edge_fluctuation_scale(N, sigma)
            # ... and the top eigenvector is delocalised: |⟨u, v⟩|² = O(1/N) (0.05 = 100/N).
            assert (vecs[:, -1] @ v[:, 0]) ** 2 < 0.05
        else:
            sd = outliers.spiked_outlier_sd(th, sigma, N)
            assert abs(vals[-1] - outliers.spiked_outlier(th, sigma)) < 5 * sd
            # θ + σ²/θ − 5 sd ≈ 2.05 lies beyond the edge's Tracy–Widom band 2σ + 5σN^(−2/3)
            # ≈ 2.03, so passing the line above already implies this separation.
            assert vals[-1] > 2 * sigma + 5 * laws.edge_fluctuation_scale(N, sigma)


def test_outlier_sd_matches_simulation():
    n, th, sigma, draws = 300, 2.0, 1.0, 60
    lam = [
        np.linalg.eigvalsh(spiked([th], wigner(n, sigma, seed=500 + k), seed=900 + k)[0])[-1]
        for k in range(draws)
    ]
    # The sample sd of 60 Gaussian draws has relative sd 1/√120 ≈ 0.09; ±35% is ≈ 4 of those.
    assert np.std(lam, ddof=1) / outliers.spiked_outlier_sd(th, sigma, n) == pytest.approx(
        1.0, abs=0.35
    )


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_recipe_reproduces_lemma5_with_semicircle(sigma):
    th = sigma * np.array([-5.0, -1.5, -0.8, 0.3, 1.01, 1.5, 4.0])
    res = outliers.outliers_from_stieltjes(th, _sc(sigma), (-2 * sigma, 2 * sigma))
    assert res.thresholds == pytest.approx((-sigma, sigma), rel=1e-12)
    np.testing.assert_array_equal(res.is_outlier, np.abs(th) > sigma)
    np.testing.assert_allclose(res.location, outliers.spiked_outlier(th, sigma), rtol=1e-10)
    # Central differences with step 1e−6 are accurate to ~1e−8 relative.
    np.testing.assert_allclose(res.overlap, outliers.spiked_overlap(th, sigma), atol=1e-6)


@pytest.mark.parametrize("q", [0.5, 2.0])
def test_recipe_reproduces_mp_additive_closed_form(q):
    sigma = 1.2
    lo, hi = laws.mp_edges(q, sigma)
    th = np.array([-3.0, -0.3, 0.5, 3.0, 6.0])
    lower = lo if q < 1 else 0.0  # for q > 1 the atom at 0 is the bottom of the spectrum
    res = outliers.outliers_from_stieltjes(
        th, lambda x: laws.mp_stieltjes(x, q, sigma), (lower, hi)
    )
    loc, ov = outliers.mp_additive_outlier(th, q, sigma)
    assert res.thresholds[1] == pytest.approx(sigma**2 * (q + np.sqrt(q)), rel=1e-10)
    np.testing.assert_allclose(res.location, loc, rtol=1e-9)
    np.testing.assert_allclose(res.overlap, ov, atol=1e-6)


def test_mp_additive_spike_simulation():
    p, n, q, th = 1000, 2000, 0.5, 2.0
    w = wishart(p, n, 1.0, seed=41)
    m, v = spiked([th], w, seed=42)
    vals, vecs = np.linalg.eigh(m)
    loc, ov = outliers.mp_additive_outlier(th, q)
    # Fluctuations come from v: θ G_v(λ) = 1 with Var G_v = (2/p)(−G′ − G²) for Haar v, so
    # sd(λ) = √(2(−G′ − G²)/p)/|G′| (linearising θG_v(λ) = 1; for the semicircle this gives
    # spiked_outlier_sd); G′ by central differences of the closed form.
    h = 1e-6
    g = laws.mp_stieltjes(loc, q).real
    gp = (laws.mp_stieltjes(loc + h, q) - laws.mp_stieltjes(loc - h, q)).real / (2 * h)
    sd = np.sqrt(2 * (-gp - g**2) / p) / abs(gp)
    assert abs(vals[-1] - loc) < 5 * sd
    # Overlap sd is O(1/√p) with constant ≲ 1 as for Wigner (≈ 0.5 at θ = 2σ).
    assert abs((vecs[:, -1] @ v[:, 0]) ** 2 - ov) < 5 / np.sqrt(p)


def test_recipe_is_exact_at_finite_n_with_the_spike_weighted_transform():
    # For M = W + θvvᵀ, eigenvalues outside spec(W) solve vᵀ(λ − W)⁻¹v = 1/θ exactly, and
    # |⟨u, v⟩|² = −1/(θ² G_v′(λ)) since u ∝ (λ − W)⁻¹v: an exact check of the root finder
    # and the derivative, independent of any limit.
    n, th = 800, 1.7
    w = wigner(n, 1.0, seed=51)
    lam, q = np.linalg.eigh(w)
    v = haar_orthonormal(n, 1, seed=52)[:, 0]
    weights = (q.T @ v) ** 2

    def g_v(x):
        return np.sum(weights / (x - lam))

    res = outliers.outliers_from_stieltjes([th], g_v, lam[-1])
    vals, vecs = np.linalg.eigh(w + th * np.outer(v, v))
    assert res.thresholds[1] == 0.0  # G_v diverges at the top eigenvalue of W
    assert res.location[0] == pytest.approx(vals[-1], abs=1e-9)
    assert res.overlap[0] == pytest.approx((vecs[:, -1] @ v) ** 2, abs=1e-6)


def test_recipe_with_empirical_transform_of_a_noise_sample():
    sigma, th = 1.0, 2.0
    eigs = np.linalg.eigvalsh(wigner(N, sigma, seed=61))
    res = outliers.outliers_from_stieltjes(
        [th], lambda x: laws.empirical_stieltjes(eigs, x), eigs[-1]
    )
    # |G_N − G| at distance d ≥ 0.5 from the spectrum is ≤ TV(1/(x − ·))·KS ≤ (2/d)(10/N),
    # and δρ = δG/|G′| with |G′(ρ)| = 1/(θ² − σ²) = 1/3: |δρ| < 3·(4·10/N) = 0.06.
    assert abs(res.location[0] - outliers.spiked_outlier(th, sigma)) < 3 * 4 * 10 / N


@settings(max_examples=40, deadline=None)
@given(
    sigma=st.floats(0.1, 10.0),
    a=st.floats(1.05, 20.0),
    b=st.floats(1.05, 20.0),
    c=st.floats(0.1, 10.0),
)
def test_properties_monotone_bounded_and_scale_covariant(sigma, a, b, c):
    t1, t2 = sorted([a * sigma, b * sigma])
    assert outliers.spiked_outlier(t1, sigma) <= outliers.spiked_outlier(t2, sigma) + 1e-12
    assert outliers.spiked_outlier(-t1, sigma) >= outliers.spiked_outlier(-t2, sigma) - 1e-12
    for t in (t1, t2, -t1, 0.5 * t1 / a):
        assert 0.0 <= outliers.spiked_overlap(t, sigma) <= 1.0
    assert outliers.spiked_outlier(c * t1, c * sigma) == pytest.approx(
        c * outliers.spiked_outlier(t1, sigma), rel=1e-12
    )
    res = outliers.outliers_from_stieltjes([t1, t2], _sc(sigma), 2 * sigma)
    assert res.location[0] <= res.location[1] + 1e-9 * sigma
    assert np.all((res.overlap >= 0) & (res.overlap <= 1))


@settings(max_examples=30, deadline=None)
@given(q=st.floats(0.05, 10.0), t=st.floats(-20.0, 20.0))
def test_mp_additive_overlap_is_a_probability(q, t):
    loc, ov = outliers.mp_additive_outlier(t, q)
    assert 0.0 <= ov <= 1.0
    lo, hi = laws.mp_edges(q)
    assert loc >= hi - 1e-12 or loc <= (lo if q < 1 else 0.0) + 1e-12


def test_mp_additive_outlier_is_a_named_result():
    res = outliers.mp_additive_outlier(2.0, 0.5)
    assert isinstance(res, outliers.MPAdditiveOutlier)
    assert (res.location, res.overlap) == tuple(res)
    assert res.location == pytest.approx(2.0 + 2.0 / (2.0 - 0.5))  # θ + θ/(θ − q), σ = 1


def test_bad_input_raises():
    with pytest.raises(ValueError, match="sigma"):
        outliers.spiked_outlier(2.0, sigma=0.0)
    with pytest.raises(ValueError, match="theta"):
        outliers.spiked_overlap(float("nan"))
    with pytest.raises(ValueError, match="theta"):
        outliers.spiked_outlier_sd(0.5, 1.0, 100)
    with pytest.raises(ValueError, match="q"):
        outliers.mp_additive_outlier(2.0, q=-1)
    with pytest.raises(ValueError, match="lower"):
        outliers.outliers_from_stieltjes([-2.0], _sc(1.0), 2.0)
    with pytest.raises(ValueError, match="edge"):
        outliers.outliers_from_stieltjes([2.0], _sc(1.0), (2.0, -2.0))
    with pytest.raises(ValueError, match="edge"):
        outliers.outliers_from_stieltjes([2.0], _sc(1.0), (1.0, 2.0, 3.0))
    with pytest.raises(TypeError, match="stieltjes"):
        outliers.outliers_from_stieltjes([2.0], 3.0, 2.0)
    with pytest.raises(TypeError, match="theta"):
        outliers.spiked_outlier("2.0")
    with pytest.raises(TypeError, match="sigma"):
        outliers.bbp_threshold(None)
    with pytest.raises(ValueError, match="stieltjes"):
        outliers.outliers_from_stieltjes([3.0], lambda x: laws.semicircle_stieltjes(x) + 1j, 2.0)


@pytest.mark.parametrize("q", [1.0, 4.0])
def test_mp_additive_tiny_negative_spike_has_the_limiting_overlap(q):
    # θ → 0⁻ with q ≥ 1: the outlier sits just below the atom at 0, with overlap 1 − 1/q
    # (the limit of −D/(θ − qσ²)); a subnormal θ once overflowed to NaN (found by hypothesis).
    for theta in (-5e-324, -1e-300, -1e-12):
        loc, ov = outliers.mp_additive_outlier(theta, q)
        assert loc <= 0.0
        assert ov == pytest.approx(1 - 1 / q, abs=1e-9)
