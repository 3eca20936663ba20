"""The vector Dyson equation of variance profiles against closed forms and simulation.

Tolerances:
- Solver vs closed form: numerical only, < 1e-6 pointwise away from the edges (the Cauchy
  smoothing at the default η ≈ 1e-8 is O(η) in the bulk but O(√η) within ~η of an edge).
- Eigenvalue CDF of one N×N draw vs the limiting CDF: eigenvalues are rigid, so the
  Kolmogorov distance is ~3–4/N (measured N·KS ≤ 4.1 over 30 GOE draws), not the i.i.d.
  1/√N; we allow 10/N.
- Top edge: λ_max − E ≈ γN^(−2/3)·TW₁ with γ = c^(−2/3) for a square-root edge
  ρ(x) ≈ (c/π)√(E − x) (edge universality, Alt–Erdős–Krüger–Schröder 2020); TW₁ has mean
  −1.21 and sd 1.27, so we allow the mean ± 5 sd.
- Outliers: sd √(2σ²(1 − σ²/θ²)/N) for Wigner noise; with a profile we use σ² = the
  largest row sum as an upper bound, and 5 sd/√k for the mean of k draws. Overlaps: sd
  ≈ 0.5/√N, so 5 × 0.5/√(kN).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import trapezoid
from spectra import ks_to_density

from rmtlr.rmt.dyson import (
    dyson_density,
    dyson_edge,
    dyson_stieltjes,
    mean_variance,
    profile_outlier,
)
from rmtlr.rmt.ensembles import block_profile, variance_profile_matrix
from rmtlr.rmt.laws import TW1_MEAN, TW1_SD, semicircle_pdf, semicircle_stieltjes

TWO_BLOCK = np.array([[1.0, 0.2], [0.2, 3.0]])
HALVES = [0.5, 0.5]


def _smooth_profile(n):
    """S_ij = f(i/n, j/n) with f(x, y) = 0.5 + (x + y)²: rows sums vary from 0.83 to 3.8."""
    u = (np.arange(n) + 0.5) / n
    return 0.5 + (u[:, None] + u[None, :]) ** 2


def _edge_scale(S, fractions, edge, rel=1e-5):
    """γ = c^(−2/3) from ρ(E − d) ≈ (c/π)√d at d = rel·E (d ≫ η, so smoothing is negligible)."""
    d = rel * edge
    c = np.pi * dyson_density(S, [edge - d], fractions)[0] / np.sqrt(d)
    return c ** (-2 / 3)


# --- vector Dyson equation: closed forms ---------------------------------------------------------


@pytest.mark.parametrize("sigma2", [0.5, 1.0, 2.0])
def test_constant_profile_is_semicircle(sigma2):
    sigma = np.sqrt(sigma2)
    x = np.linspace(-3 * sigma, 3 * sigma, 1201)
    away = np.abs(np.abs(x) - 2 * sigma) > 0.02 * sigma
    # 1×1 block, and an n×n constant profile (which goes through the low-rank path).
    for S, fr in [(np.full((1, 1), sigma2), None), (np.full((300, 300), sigma2), None)]:
        rho = dyson_density(S, x, fr)
        assert np.abs(rho - semicircle_pdf(x, sigma))[away].max() < 1e-6
    z = np.array([0.3 + 0.5j, -1.0 + 1e-3j, 4.0 + 2j]) * sigma
    G = dyson_stieltjes(np.full((1, 1), sigma2), z)[:, 0]
    assert np.abs(G - semicircle_stieltjes(z, sigma)).max() < 1e-10
    assert dyson_edge(np.full((1, 1), sigma2)) == pytest.approx(2 * sigma, rel=1e-8)


def test_stochastic_profiles_are_semicircle():
    # Equal row sums σ² = 1 (generalised Wigner, the paper's Thm 3 (ii)): exactly the
    # semicircle even though individual variances differ by a factor 3 (block) or 3 (smooth).
    x = np.linspace(-2.5, 2.5, 801)
    away = np.abs(np.abs(x) - 2) > 0.02
    rho = dyson_density([[0.5, 1.5], [1.5, 0.5]], x, HALVES)
    assert np.abs(rho - semicircle_pdf(x))[away].max() < 1e-6
    n = 400
    i = np.arange(n)
    circulant = 1.0 + 0.5 * np.cos(2 * np.pi * (i[:, None] - i[None, :]) / n)
    rho = dyson_density(circulant, x)
    assert np.abs(rho - semicircle_pdf(x))[away].max() < 1e-6
    # Every G_i equals the semicircle's, so a spike feels the same field wherever it sits.
    G = dyson_stieltjes(circulant, [0.1 + 0.2j, 2.5])
    assert np.abs(G - semicircle_stieltjes(np.array([0.1 + 0.2j, 2.5]))[:, None]).max() < 1e-10


def test_density_has_mass_one_and_two_block_edge():
    edge = dyson_edge(TWO_BLOCK, HALVES)
    # 2.495 (computed independently by plain fixed-point iteration at η = 1e−4), strictly
    # inside the row-sum bound 2√1.6 and above 2√(Perron root of S·diag α) = 2.458.
    assert edge == pytest.approx(2.495, abs=1e-3)
    x = np.linspace(-edge - 0.5, edge + 0.5, 20001)
    rho = dyson_density(TWO_BLOCK, x, HALVES)
    # Mass lost to the Cauchy tails beyond the grid is O(η/0.5) ≈ 1e-8.
    assert trapezoid(rho, x) == pytest.approx(1.0, abs=1e-4)
    assert rho[np.abs(x) > edge + 1e-3].max() < 1e-5
    # The block-diagonal Stieltjes vector satisfies the block equations exactly.
    z = np.array([0.7 + 0.01j, 3.0])
    G = dyson_stieltjes(TWO_BLOCK, z, HALVES)
    resid = G - 1.0 / (z[:, None] - G @ (TWO_BLOCK * np.array(HALVES)).T)
    assert np.abs(resid).max() < 1e-10


def test_full_profile_equals_its_block_reduction():
    n = 300
    S = block_profile(TWO_BLOCK, HALVES, n)
    x = np.linspace(-3, 3, 301)
    assert np.abs(dyson_density(S, x) - dyson_density(TWO_BLOCK, x, HALVES)).max() < 1e-8


# --- vector Dyson equation: simulation -----------------------------------------------------------


@pytest.mark.parametrize("name,n", [("two-block", 2000), ("smooth", 1500)])
def test_density_vs_simulation(name, n):
    if name == "two-block":
        S_full, S, fr = block_profile(TWO_BLOCK, HALVES, n), TWO_BLOCK, HALVES
    else:
        S_full = S = _smooth_profile(n)
        fr = None
    eigs = np.linalg.eigvalsh(variance_profile_matrix(S_full, seed=1))
    edge = dyson_edge(S, fr)
    x = np.linspace(-edge, edge, 4001)
    rho = dyson_density(S, x, fr)
    assert ks_to_density(eigs, x, rho) < 10 / n
    # The non-constant field is visible: the semicircle of the mean variance is off by far
    # more than the finite-N error.
    sc = semicircle_pdf(x, np.sqrt(mean_variance(S, fr)))
    assert ks_to_density(eigs, x, sc) > 30 / n
    gamma = _edge_scale(S, fr, edge)
    tw = (eigs[-1] - edge) / (gamma * n ** (-2 / 3))
    assert abs(tw - TW1_MEAN) < 5 * TW1_SD


def test_full_rank_profile_vs_simulation():
    # A profile with i.i.d. random variances is not low-rank: the solver falls back to the
    # averaged O(n²) iteration (η = 1e-3 × width) and dense Newton for the edge.
    n = 300
    R = np.random.default_rng(7).uniform(0.2, 3.0, (n, n))
    S = (R + R.T) / 2
    edge = dyson_edge(S)
    x = np.linspace(-edge - 0.1, edge + 0.1, 401)
    eigs = np.linalg.eigvalsh(variance_profile_matrix(S, seed=8))
    assert ks_to_density(eigs, x, dyson_density(S, x)) < 10 / n
    gamma = _edge_scale(S, None, edge, rel=0.05)  # η = 1e-3 × width here
    assert abs((eigs[-1] - edge) / (gamma * n ** (-2 / 3)) - TW1_MEAN) < 5 * TW1_SD


def test_stieltjes_above_support_vs_resolvent():
    # Local law: block averages of diag (λ − X)⁻¹ match G_k(λ) up to O(1/N) (each diagonal
    # entry fluctuates by O(N^(−1/2)), the n/2 of a block average by much less); 2/√N is
    # a conservative bound.
    n = 1500
    X = variance_profile_matrix(block_profile(TWO_BLOCK, HALVES, n), seed=2)
    lam = 3.0
    diag = np.diag(np.linalg.inv(lam * np.eye(n) - X))
    G = dyson_stieltjes(TWO_BLOCK, lam, HALVES)
    sim = [diag[: n // 2].mean(), diag[n // 2 :].mean()]
    assert np.abs(G - sim).max() < 2 / np.sqrt(n)
    # 1/G_k = λ − Σ_l α_l S_kl G_l is larger for the low-variance block 1: smaller G_1,
    # which is why a spike there moves out less (test_two_block_outlier_values).
    assert np.isrealobj(G) and G[1] > G[0] > 0


# --- spikes on a variance profile ----------------------------------------------------------------


def test_profile_outlier_reduces_to_lemma5():
    for sigma2, theta in [(1.0, 3.0), (2.0, 2.0), (0.5, -1.5)]:
        s = np.sqrt(sigma2)
        res = profile_outlier(theta, [1.0], np.full((1, 1), sigma2))
        assert res.outlier == pytest.approx(theta + sigma2 / theta, rel=1e-9)
        assert res.overlap == pytest.approx(1 - sigma2 / theta**2, rel=1e-6)
        assert res.threshold == pytest.approx(s, rel=1e-4)
    below = profile_outlier(0.5, [1.0], np.ones((1, 1)))
    assert below.outlier == pytest.approx(2.0, rel=1e-8) and below.overlap == 0.0


def test_profile_outlier_vectorised_and_monotone():
    thetas = np.array([0.5, 1.0, 2.0, 3.0, 5.0])
    res = profile_outlier(thetas, [0.0, 1.0], TWO_BLOCK, HALVES)
    single = [profile_outlier(t, [0.0, 1.0], TWO_BLOCK, HALVES).outlier for t in thetas]
    assert np.allclose(res.outlier, single, rtol=1e-12)
    above = thetas > res.threshold
    assert np.all(np.diff(res.outlier[above]) > 0) and np.all(np.diff(res.overlap[above]) > 0)
    assert np.all(res.overlap[~above] == 0) and np.all(res.outlier[~above] == res.outlier[0])
    mirrored = profile_outlier(-thetas, [0.0, 1.0], TWO_BLOCK, HALVES)
    assert np.allclose(mirrored.outlier, -res.outlier) and np.allclose(
        mirrored.overlap, res.overlap
    )


@settings(max_examples=12, deadline=None)
@given(
    s11=st.floats(0.1, 3.0),
    s12=st.floats(0.0, 3.0),
    s22=st.floats(0.1, 3.0),
    alpha=st.floats(0.1, 0.9),
    u1=st.floats(0.0, 1.0),
    c=st.floats(0.3, 3.0),
)
def test_profile_scaling_invariance(s11, s12, s22, alpha, u1, c):
    # X → cX multiplies the profile by c²: the edge scales by c, and a spike cθ on c²S lands
    # at c times the outlier of θ on S, with the same overlap and c times the threshold.
    S = np.array([[s11, s12], [s12, s22]])
    fr, u = [alpha, 1 - alpha], [u1, 1 - u1]
    edge = dyson_edge(S, fr)
    assert dyson_edge(c**2 * S, fr) == pytest.approx(c * edge, rel=1e-8)
    base = profile_outlier(3.0, u, S, fr)
    scaled = profile_outlier(3.0 * c, u, c**2 * S, fr)
    assert scaled.threshold == pytest.approx(c * base.threshold, rel=1e-6)
    assert scaled.outlier == pytest.approx(c * base.outlier, rel=1e-8)
    assert scaled.overlap == pytest.approx(base.overlap, rel=1e-6, abs=1e-12)
    # Upper bound 2√(max row sum) (for Gaussian entries: Bandeira & van Handel 2016).
    # Lower bound 2σ̄: the 2k-th moment of ρ is a sum over the Cat_k non-crossing pairings
    # (plane trees with k edges) of weighted tree counts, each ≥ σ̄^(2k) by Sidorenko's inequality (which holds for trees), so
    # E ≥ lim (Cat_k σ̄^(2k))^(1/2k) = 2σ̄.
    sbar = np.sqrt(mean_variance(S, fr))
    assert 2 * sbar * (1 - 1e-9) <= edge <= 2 * np.sqrt((S @ fr).max()) * (1 + 1e-9)


def test_stochastic_profile_outlier_is_placement_free():
    S = [[0.5, 1.5], [1.5, 0.5]]
    for u in ([1.0, 0.0], [0.0, 1.0], [0.3, 0.7]):
        res = profile_outlier(3.0, u, S, HALVES)
        assert res.outlier == pytest.approx(3 + 1 / 3, rel=1e-9)


def test_two_block_outlier_values():
    # 3.205 / 3.530 / 3.388 (simulated at n = 2000, 6 draws: 3.195 / 3.520 / 3.398); the
    # paper's θ + σ̄²/θ = 3.367 for all three placements.
    pred = [profile_outlier(3.0, u, TWO_BLOCK, HALVES) for u in ([1, 0], [0, 1], HALVES)]
    assert [round(p.outlier, 3) for p in pred] == [3.205, 3.530, 3.388]
    assert [round(p.overlap, 3) for p in pred] == [0.927, 0.826, 0.854]
    assert 3 + mean_variance(TWO_BLOCK, HALVES) / 3 == pytest.approx(3.367, abs=5e-4)


def test_profile_outlier_matches_generic_bgn_recipe():
    # Independent route: feed h(λ) = Σ_k u_k G_k(λ) to the generic Benaych-Georges–Nadakuditi
    # solver of rmt.outliers (its own root bracket and finite-difference G′); the analytic
    # G′ used by profile_outlier must agree to finite-difference accuracy. The edge is
    # passed as E(1 + 1e-9), where profile_outlier evaluates h(E⁺) too (G is not defined
    # on the support itself).
    from rmtlr.rmt.outliers import outliers_from_stieltjes

    edge = dyson_edge(TWO_BLOCK, HALVES) * (1 + 1e-9)
    thetas = [2.5, 3.0, 4.0]
    for u in ([1.0, 0.0], [0.0, 1.0], [0.3, 0.7]):
        ours = profile_outlier(thetas, u, TWO_BLOCK, HALVES)
        generic = outliers_from_stieltjes(
            thetas, lambda x, u=u: float(np.dot(u, dyson_stieltjes(TWO_BLOCK, x, HALVES))), edge
        )
        assert np.allclose(ours.outlier, generic.location, rtol=1e-9)
        assert np.allclose(ours.overlap, generic.overlap, rtol=1e-5)
        assert ours.threshold == pytest.approx(generic.thresholds[1], rel=1e-12)


def _spike_in(n, weights, seed):
    """Unit v with Gaussian entries inside each block, block k carrying mass weights[k]."""
    rng = np.random.default_rng(seed)
    v = np.empty(n)
    half = n // 2
    for k, sl in enumerate([slice(0, half), slice(half, n)]):
        g = rng.standard_normal(sl.stop - sl.start)
        v[sl] = np.sqrt(weights[k]) * g / np.linalg.norm(g)
    return v


def _top_pair(M):
    w, V = np.linalg.eigh(M)
    return w[-1], V[:, -1]


@pytest.mark.parametrize("weights", [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
def test_placement_aware_outlier_vs_simulation(weights):
    n, theta, draws = 1500, 3.0, 3
    S_full = block_profile(TWO_BLOCK, HALVES, n)
    pred = profile_outlier(theta, weights, TWO_BLOCK, HALVES)
    lam, ov = [], []
    for d in range(draws):
        v = _spike_in(n, weights, seed=10 + d)
        top, u = _top_pair(variance_profile_matrix(S_full, seed=20 + d) + theta * np.outer(v, v))
        lam.append(top)
        ov.append((u @ v) ** 2)
    sigma2_max = (TWO_BLOCK @ HALVES).max()
    sd = np.sqrt(2 * sigma2_max * (1 - sigma2_max / theta**2) / n)
    assert abs(np.mean(lam) - pred.outlier) < 5 * sd / np.sqrt(draws)
    assert abs(np.mean(ov) - pred.overlap) < 5 * 0.5 / np.sqrt(draws * n)


def test_threshold_depends_on_placement():
    # θ = 1.8 lies between the two placements' thresholds (1.23 in block 2, 2.18 in block 1),
    # ≥ 3σN^(−1/3) away from both, so only the block-2 spike pulls out an outlier.
    n, theta = 2000, 1.8
    S_full = block_profile(TWO_BLOCK, HALVES, n)
    edge = dyson_edge(TWO_BLOCK, HALVES)
    gamma = _edge_scale(TWO_BLOCK, HALVES, edge)
    X = variance_profile_matrix(S_full, seed=5)
    low = profile_outlier(theta, [1, 0], TWO_BLOCK, HALVES)
    high = profile_outlier(theta, [0, 1], TWO_BLOCK, HALVES)
    assert low.threshold > theta > high.threshold
    assert low.outlier == pytest.approx(edge) and low.overlap == 0.0
    assert high.outlier > edge + 0.05
    top_low, _ = _top_pair(X + theta * np.outer(*(2 * [_spike_in(n, [1, 0], 6)])))
    top_high, _ = _top_pair(X + theta * np.outer(*(2 * [_spike_in(n, [0, 1], 6)])))
    assert abs((top_low - edge) / (gamma * n ** (-2 / 3)) - TW1_MEAN) < 5 * TW1_SD
    sd = np.sqrt(2 * 1.6 / n)
    assert abs(top_high - high.outlier) < 5 * sd


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_raises():
    with pytest.raises(ValueError, match="symmetric"):
        dyson_density([[1.0, 0.5], [0.2, 1.0]], [0.0], HALVES)
    with pytest.raises(ValueError, match=">= 0"):
        dyson_density([[1.0, -0.1], [-0.1, 1.0]], [0.0], HALVES)
    with pytest.raises(ValueError, match="fractions"):
        dyson_density(TWO_BLOCK, [0.0], [0.7, 0.7])
    with pytest.raises(ValueError, match="fractions"):
        dyson_density(TWO_BLOCK, [0.0], [1.5, -0.5])
    with pytest.raises(ValueError, match="fractions"):
        dyson_density(TWO_BLOCK, [0.0], [1.0])
    with pytest.raises(ValueError, match="eta"):
        dyson_density(TWO_BLOCK, [0.0], HALVES, eta=0.0)
    with pytest.raises(ValueError, match="x"):
        dyson_density(TWO_BLOCK, [np.nan], HALVES)
    with pytest.raises(ValueError, match="zero"):
        dyson_density(np.zeros((2, 2)), [0.0])
    with pytest.raises(ValueError, match="outside the support"):
        dyson_stieltjes(TWO_BLOCK, 1.0, HALVES)
    with pytest.raises(ValueError, match="upper half plane"):
        dyson_stieltjes(TWO_BLOCK, 1.0 - 1j, HALVES)
    with pytest.raises(ValueError, match="theta"):
        profile_outlier(0.0, HALVES, TWO_BLOCK, HALVES)
    with pytest.raises(ValueError, match="v_weights"):
        profile_outlier(3.0, [0.5, 0.6], TWO_BLOCK, HALVES)
    with pytest.raises(ValueError, match="v_weights"):
        profile_outlier(3.0, [1.0], TWO_BLOCK, HALVES)
    with pytest.raises(TypeError, match="S \\(variance profile\\)"):
        dyson_density("abc", [0.0])
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1, got 10.5"):
        dyson_density(TWO_BLOCK, [0.0], HALVES, max_iter=10.5)
    with pytest.raises(TypeError, match="v_weights"):
        profile_outlier(3.0, ["0.5", "0.5"], TWO_BLOCK, HALVES)
