"""Spiked Wishart (Baik–Silverstein, Paul) and the batch-GGN prediction (Thm 7) vs simulation.

Tolerances: a spiked-covariance outlier from n samples fluctuates with sd
sqrt(2ℓ²(1 − γ/(ℓ/σ² − 1)²)/n) (Paul 2007), so we allow 5 sd; the top eigenvector
overlap fluctuates by O(1/sqrt(n)) (measured sd ≈ 0.5/sqrt(n) for well-separated spikes)
and we allow 5·sqrt(2/n); the MP edge fluctuates on Johnstone's (2001) Tracy–Widom scale
σ²(√n + √p)(1/√n + 1/√p)^(1/3)/n (TW₁ mean −1.21, sd 1.27 in those units), so we allow 5 of
those units.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rmtlr.rmt.ensembles import haar_orthonormal
from rmtlr.rmt.ggn import (
    batch_ggn_model,
    ggn_batch_edge,
    ggn_batch_outlier,
    ggn_batch_overlap,
    ggn_outlier_additive_noise,
    ggn_ratio,
    paper_eq18,
    per_sample_ggn_vectors,
    spiked_wishart_outlier,
    spiked_wishart_overlap,
    wishart_bbp_threshold,
)


def _population(P, ells, sigma2, seed):
    V = haar_orthonormal(P, len(ells), seed)
    G = sigma2 * np.eye(P) + (V * (np.asarray(ells) - sigma2)) @ V.T
    return G, V


def _bs_sd(ell, gamma, n, sigma2=1.0):
    t = ell / sigma2 - 1.0
    return np.sqrt(2 * ell**2 * (1 - gamma / t**2) / n)


def _johnstone_scale(p, n, sigma2=1.0):
    """Tracy–Widom scale of the top eigenvalue of a p×p white Wishart matrix normalised by n."""
    return sigma2 * (np.sqrt(n) + np.sqrt(p)) * (1 / np.sqrt(n) + 1 / np.sqrt(p)) ** (1 / 3) / n


def test_spiked_wishart_reference_numbers():
    # Baik–Silverstein eigenvalues and Paul overlaps by hand: ℓ(1 + γ/(ℓ − 1)) and
    # (1 − γ/(ℓ−1)²)/(1 + γ/(ℓ−1)).
    assert spiked_wishart_outlier(3.0, gamma=0.5) == pytest.approx(3.75)
    assert spiked_wishart_outlier(5.0, gamma=0.5) == pytest.approx(5.625)
    assert spiked_wishart_outlier(4.0, gamma=2.0) == pytest.approx(20 / 3)
    assert spiked_wishart_overlap(3.0, gamma=0.5) == pytest.approx(0.70)
    assert spiked_wishart_overlap(5.0, gamma=0.5) == pytest.approx(0.8611, abs=1e-4)
    assert wishart_bbp_threshold(0.25) == pytest.approx(1.5)
    # below threshold: the MP edge and zero overlap; scaling by σ² is homogeneous
    assert spiked_wishart_outlier(1.5, gamma=0.5) == pytest.approx((1 + np.sqrt(0.5)) ** 2)
    assert spiked_wishart_overlap(1.5, gamma=0.5) == 0.0
    assert spiked_wishart_outlier(6.0, gamma=0.5, noise_var=2.0) == pytest.approx(2 * 3.75)


@pytest.mark.parametrize("gamma, ells", [(0.5, (5.0, 3.0)), (2.0, (6.0, 4.0))])
def test_spiked_wishart_vs_simulation(gamma, ells):
    p = 600
    n = int(p / gamma)
    G, V = _population(p, ells, 1.0, seed=int(10 * gamma))
    w, U = np.linalg.eigh(batch_ggn_model(n, G_full=G, seed=1))
    for k, ell in enumerate(ells):
        pred = spiked_wishart_outlier(ell, gamma=gamma)
        assert abs(w[-1 - k] - pred) < 5 * _bs_sd(ell, gamma, n), (ell, w[-1 - k], pred)
        ov = (U[:, -1 - k] @ V[:, k]) ** 2
        assert abs(ov - spiked_wishart_overlap(ell, gamma=gamma)) < 5 * np.sqrt(2 / n)


def test_bbp_threshold_below_and_above():
    p, gamma = 600, 1.0
    n = int(p / gamma)
    thr = wishart_bbp_threshold(gamma)  # 2; the critical window is ~ n^(-1/3) ≈ 0.12
    edge = (1 + np.sqrt(gamma)) ** 2
    tw = _johnstone_scale(p, n)
    for ell, separated in ((thr - 0.6, False), (thr + 1.0, True)):
        G, _ = _population(p, (ell,), 1.0, seed=3)
        top = np.linalg.eigvalsh(batch_ggn_model(n, G_full=G, seed=4))[-1]
        if separated:
            pred = spiked_wishart_outlier(ell, gamma=gamma)
            assert pred > edge + 10 * tw
            assert abs(top - pred) < 5 * _bs_sd(ell, gamma, n)
        else:
            assert spiked_wishart_outlier(ell, gamma=gamma) == pytest.approx(edge)
            assert abs(top - edge) < 5 * tw


# --- the batch GGN: fresh samples (N = ∞) and an actual finite data set -------------------

P_G = 400
ELLS = (8.0, 4.0)


@pytest.mark.parametrize("B", [200, 800, 4000])
def test_ggn_batch_outlier_fresh_samples(B):
    G, V = _population(P_G, ELLS, 1.0, seed=5)
    w, U = np.linalg.eigh(batch_ggn_model(B, G_full=G, seed=6 + B))
    gamma = ggn_ratio(P=P_G, B=B, N=np.inf)
    assert gamma == pytest.approx(P_G / B)
    for k, ell in enumerate(ELLS):
        pred = ggn_batch_outlier(ell, P=P_G, B=B, N=np.inf, noise_var=1.0)
        assert abs(w[-1 - k] - pred) < 5 * _bs_sd(ell, gamma, B), (B, ell, w[-1 - k], pred)
        ov = (U[:, -1 - k] @ V[:, k]) ** 2
        pred_ov = ggn_batch_overlap(ell, P=P_G, B=B, N=np.inf, noise_var=1.0)
        assert abs(ov - pred_ov) < 5 * np.sqrt(2 / B)


@pytest.fixture(scope="module")
def finite_data_set():
    N = 20000  # P/N = 0.02: the finite-N corrections to γ = P/𝔟 are O(P/N) (Wachter edge)
    G, V = _population(P_G, ELLS, 1.0, seed=8)
    X = per_sample_ggn_vectors(G, N, seed=9)
    return G, V, X, N


def test_per_sample_vectors_reproduce_full_ggn(finite_data_set):
    G, _, X, N = finite_data_set
    assert np.allclose(X.T @ X / N, G, atol=1e-10)


@pytest.mark.parametrize("B", [400, 2000, 10000, 20000])
def test_ggn_batch_outlier_without_replacement(finite_data_set, B):
    _G, _, X, N = finite_data_set
    w = np.linalg.eigvalsh(batch_ggn_model(B, per_sample=X, seed=10 + B))
    gamma = ggn_ratio(P=P_G, B=B, N=N)
    for k, ell in enumerate(ELLS):
        pred = ggn_batch_outlier(ell, P=P_G, B=B, N=N, noise_var=1.0)
        # 5 sd of an outlier from 𝔟 samples, plus the O(P/N)·λ' finite-N correction
        tol = 5 * _bs_sd(ell, gamma, max(B, 1)) + (P_G / N) * pred if B < N else 1e-9
        assert abs(w[-1 - k] - pred) < tol, (B, ell, w[-1 - k], pred)
    if B == N:  # the whole data set: the batch GGN is the full GGN
        assert np.allclose(w[-2:], sorted(ELLS)) and np.allclose(w[:-2], 1.0)


def test_ggn_batch_edge_atom_when_left_out_samples_cannot_span(finite_data_set):
    _G, _V, X, N = finite_data_set
    B = N - P_G // 2  # N − B < P: bulk directions untouched by the left-out samples stay at N/B
    w = np.linalg.eigvalsh(batch_ggn_model(B, per_sample=X, seed=31))
    assert w[-3] == pytest.approx(ggn_batch_edge(P=P_G, B=B, N=N, noise_var=1.0), rel=1e-9)


@pytest.mark.parametrize("B", [2000, 10000])
def test_ggn_batch_edge_is_wachter_with_effective_batch_size(finite_data_set, B):
    _G, _, X, N = finite_data_set
    third = np.linalg.eigvalsh(batch_ggn_model(B, per_sample=X, seed=20 + B))[-3]  # bulk top
    edge = ggn_batch_edge(P=P_G, B=B, N=N, noise_var=1.0)
    # the edge fluctuates on the Tracy–Widom scale ~ n^(-2/3); Johnstone's scale with n = B
    tw = _johnstone_scale(P_G, B)
    assert abs(third - edge) < 5 * tw, (third, edge, tw)
    # ... which resolves the batch size entering as 𝔟 rather than B (fresh-sample MP edge)
    assert abs(third - ggn_batch_edge(P=P_G, B=B, N=np.inf, noise_var=1.0, finite_N=False)) > 5 * tw


def test_additive_reading_formula_and_why_it_fails_for_the_ggn():
    P, B, k = 400, 400, 16  # γ = 1; k seeded draws so that means resolve the two predictions
    sigma2, lam = 1.0, 6.0
    G, _ = _population(P, (lam,), sigma2, seed=12)
    gamma = ggn_ratio(P=P, B=B, N=np.inf)
    pred_add = ggn_outlier_additive_noise(lam, P=P, B=B, N=np.inf, noise_var=sigma2)
    pred_bs = ggn_batch_outlier(lam, P=P, B=B, N=np.inf, noise_var=sigma2)
    assert pred_add == pytest.approx(lam + gamma * sigma2**2 / (lam - sigma2 * (1 + gamma)))
    rng = np.random.default_rng(13)
    # (a) the additive formula is right for its own model: G + σ²(W − I), W white Wishart
    white = [batch_ggn_model(B, G_full=np.eye(P), seed=rng) for _ in range(k)]
    noise = [sigma2 * (W - np.eye(P)) for W in white]
    add = [np.linalg.eigvalsh(G + e)[-1] for e in noise]
    # no closed-form sd for this model: 5 empirical standard errors of the mean of k draws
    assert abs(np.mean(add) - pred_add) < 5 * np.std(add, ddof=1) / np.sqrt(k)
    # (b) the sample-covariance batch GGN follows Baik–Silverstein, far from the additive value
    top = [np.linalg.eigvalsh(batch_ggn_model(B, G_full=G, seed=rng))[-1] for _ in range(k)]
    se = _bs_sd(lam, gamma, B) / np.sqrt(k)
    assert abs(np.mean(top) - pred_bs) < 5 * se
    assert abs(np.mean(top) - pred_add) > 5 * se  # 7.2 vs 6.25: the additive reading is refuted


# --- bad input ------------------------------------------------------------------------------


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="B"):
        ggn_batch_outlier(5.0, P=100, B=0, N=1000, noise_var=1.0)
    with pytest.raises(ValueError, match="B"):
        ggn_batch_outlier(5.0, P=100, B=2000, N=1000, noise_var=1.0)
    with pytest.raises(ValueError, match="N"):
        ggn_batch_overlap(5.0, P=100, B=10, N=0, noise_var=1.0)
    with pytest.raises(ValueError, match="noise_var"):
        ggn_batch_outlier(5.0, P=100, B=10, N=1000, noise_var=-1.0)
    with pytest.raises(ValueError, match="lam"):
        ggn_batch_outlier(0.5, P=100, B=10, N=1000, noise_var=1.0)
    with pytest.raises(ValueError, match="gamma"):
        spiked_wishart_outlier(3.0, gamma=-0.5)
    with pytest.raises(ValueError, match="ell"):
        spiked_wishart_overlap(-3.0, gamma=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        batch_ggn_model(10)
    with pytest.raises(ValueError, match="B"):
        batch_ggn_model(11, per_sample=np.ones((10, 3)))
    with pytest.raises(ValueError, match="semi-definite"):
        batch_ggn_model(5, G_full=-np.eye(3))
    with pytest.raises(ValueError, match="N"):
        per_sample_ggn_vectors(np.eye(5), 3)
    with pytest.raises(ValueError, match="N .*integer >= 2, got 5.5"):
        per_sample_ggn_vectors(np.eye(2), 5.5)
    with pytest.raises(TypeError, match="N .*integer"):
        per_sample_ggn_vectors(np.eye(2), "5")
    with pytest.raises(ValueError, match="B .*integer"):
        batch_ggn_model(2.5, G_full=np.eye(3))
    with pytest.raises(TypeError, match="noise_var"):
        ggn_batch_outlier(5.0, P=100, B=10, N=1000, noise_var="1")
    with pytest.raises(ValueError, match="P .*whole number"):
        ggn_batch_outlier(5.0, P=0.5, B=10, N=1000, noise_var=1.0)
    with pytest.raises(TypeError, match="positional"):
        ggn_batch_outlier(5.0, 100, 10, 1000, 1.0)
    with pytest.raises(ValueError, match="P must be <= N"):
        ggn_batch_edge(P=100, B=10, N=50, noise_var=1.0)
    with pytest.raises(ValueError, match="P must be <= N .*finite_N=False"):
        ggn_batch_outlier(5.0, P=100, B=10, N=50, noise_var=1.0)
    with pytest.raises(ValueError, match="P must be <= N"):
        ggn_batch_overlap(5.0, P=100, B=10, N=50, noise_var=1.0)
    with pytest.raises(ValueError, match="noise_var"):
        ggn_batch_edge(P=10, B=10, N=50, noise_var=0.0)


def test_edges_and_limits_by_hand():
    # B = N: no noise, the edge is the bulk level and outliers stay put
    assert ggn_batch_edge(P=100, B=1000, N=1000, noise_var=2.0) == pytest.approx(2.0)
    # atom: N − B < P
    assert ggn_batch_edge(P=100, B=950, N=1000, noise_var=1.0) == pytest.approx(1000 / 950)
    wachter = (np.sqrt(0.9) + np.sqrt(0.1)) ** 2
    assert ggn_batch_edge(P=100, B=500, N=1000, noise_var=1.0) == pytest.approx(wachter)
    mp_edge = (1 + np.sqrt(2)) ** 2  # γ = 100/50
    edge = ggn_batch_edge(P=100, B=50, N=np.inf, noise_var=1.0, finite_N=False)
    assert edge == pytest.approx(mp_edge)
    assert ggn_batch_outlier(5.0, P=100, B=1000, N=1000, noise_var=1.0) == pytest.approx(5.0)
    assert ggn_batch_overlap(5.0, P=100, B=1000, N=1000, noise_var=1.0) == pytest.approx(1.0)
    # the additive reading's threshold is σ²(1 + γ + √γ): below it, the MP edge
    add = ggn_outlier_additive_noise(3.0, P=100, B=50, N=np.inf, noise_var=1.0)
    assert add == pytest.approx(mp_edge)


# --- properties -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    ratio=st.floats(min_value=1.0, max_value=1e3),
    sigma2=st.floats(min_value=1e-3, max_value=10.0),
    P=st.integers(1, 10**7),
    N=st.integers(2, 10**6),
    data=st.data(),
)
def test_ggn_outlier_properties(ratio, sigma2, P, N, data):
    finite_N = data.draw(st.booleans())
    assume(P <= N or not finite_N)
    lam = ratio * sigma2
    B1 = data.draw(st.integers(1, N))
    B2 = data.draw(st.integers(B1, N))

    def out(B):
        return ggn_batch_outlier(lam, P=P, B=B, N=N, noise_var=sigma2, finite_N=finite_N)

    def ov(B):
        return ggn_batch_overlap(lam, P=P, B=B, N=N, noise_var=sigma2, finite_N=finite_N)

    l1, l2 = out(B1), out(B2)
    assert l1 >= lam * (1 - 1e-12)  # batching only pushes the top eigenvalue out
    assert l2 <= l1 * (1 + 1e-12)  # monotone in B
    # never inside the bulk: at least its edge, and exactly the edge when there is no outlier
    edge = ggn_batch_edge(P=P, B=B1, N=N, noise_var=sigma2, finite_N=finite_N)
    assert l1 >= edge * (1 - 1e-9)
    o1, o2 = ov(B1), ov(B2)
    if o1 == 0.0:
        assert l1 == pytest.approx(edge)
    if ratio > 1.0 + 1e-9:  # B → N: a full-GGN outlier returns to λ
        assert out(N) == pytest.approx(lam)
    assert 0.0 <= o1 <= o2 + 1e-12 and o2 <= 1.0
    if not finite_N:  # the leading-order sample-covariance shift is never below the additive one
        assert l1 >= ggn_outlier_additive_noise(lam, P=P, B=B1, N=N, noise_var=sigma2) * (1 - 1e-12)


@pytest.mark.parametrize("lam", [1.0, 2.2, 3.0, 8.0])
def test_finite_N_outlier_and_overlap_match_without_replacement_batches(lam):
    # P/N = 0.4: the leading order (Baik–Silverstein with γ = P/𝔟) puts λ = σ² and 2.2σ² at
    # the MP edge 5.13, but the batch bulk ends at the Wachter edge 4.16 and λ = 2.2σ²
    # already has an outlier (finite-N threshold 1.58σ² < 1 + √γ = 2.26σ²).
    P, N, B, k = 400, 1000, 200, 8
    G, V = _population(P, (lam,), 1.0, seed=40)
    X = per_sample_ggn_vectors(G, N, seed=41)
    tops, ovs = [], []
    for i in range(k):
        w, U = np.linalg.eigh(batch_ggn_model(B, per_sample=X, seed=42 + i))
        tops.append(w[-1])
        ovs.append((U[:, -1] @ V[:, 0]) ** 2)
    top, ov = np.mean(tops), np.mean(ovs)
    # standard errors of the k-draw means, plus the Tracy–Widom scale for the edge's offset
    tol = 5 * np.std(tops, ddof=1) / np.sqrt(k) + _johnstone_scale(P, B)
    tol_ov = 5 * np.std(ovs, ddof=1) / np.sqrt(k) + 0.01
    pred = ggn_batch_outlier(lam, P=P, B=B, N=N, noise_var=1.0)
    if lam == 1.0:
        assert pred == ggn_batch_edge(P=P, B=B, N=N, noise_var=1.0)
    assert abs(top - pred) < tol, (top, pred, tol)
    assert abs(ov - ggn_batch_overlap(lam, P=P, B=B, N=N, noise_var=1.0)) < tol_ov
    lead = ggn_batch_outlier(lam, P=P, B=B, N=N, noise_var=1.0, finite_N=False)
    lead_ov = ggn_batch_overlap(lam, P=P, B=B, N=N, noise_var=1.0, finite_N=False)
    if lam <= 2.2:
        assert abs(top - lead) > tol  # the leading order's MP edge is far above the bulk
    if 2.2 <= lam <= 3.0:
        assert abs(ov - lead_ov) > tol_ov


# --- the paper's printed Eq. 18 ------------------------------------------------------------


def test_paper_eq18_equals_the_printed_formula_above_and_below_its_threshold():
    # γ = P/𝔟 = 400·(1/200 − 1/1000) = 1.6, σ = 1: threshold σ²(1 + γ) = 2.6.
    # Above: (λ₁ + σ²(1 − γ))/(1 − γσ²/λ₁) = (3 − 0.6)/(1 − 1.6/3) = 2.4/(1.4/3) = 36/7.
    assert paper_eq18(lam1=3.0, P=400, B=200, N=1000, sigma=1.0) == pytest.approx(36 / 7)
    # Above, σ² = 2, N = ∞, γ = 100/50 = 2: threshold 6; (8 + 2·(1 − 2))/(1 − 2·2/8) = 12.
    assert paper_eq18(lam1=8.0, P=100, B=50, N=np.inf, sigma=np.sqrt(2.0)) == pytest.approx(12.0)
    # Below: 2σ²(1 + γ) = 2·2.6 = 5.2, whatever λ₁ below 2.6 is.
    for lam1 in (0.5, 2.0, 2.6):
        assert paper_eq18(lam1=lam1, P=400, B=200, N=1000, sigma=1.0) == pytest.approx(5.2)
    # Continuous at its own threshold: the outlier branch there is also 2σ²(1 + γ).
    at = paper_eq18(lam1=2.6, P=400, B=200, N=1000, sigma=1.0, threshold=False)
    assert at == pytest.approx(5.2)
    # Array inputs broadcast, one value per batch size.
    np.testing.assert_allclose(
        paper_eq18(lam1=3.0, P=400, B=np.array([200, 1000]), N=1000, sigma=1.0), [36 / 7, 4.0])


def test_paper_eq18_departs_from_the_standard_results():
    gamma = 1.6
    # threshold σ²(1 + γ) vs BBP σ²(1 + √γ); sub-threshold 2σ²(1 + γ) vs the MP edge
    assert wishart_bbp_threshold(gamma) == pytest.approx(1 + np.sqrt(gamma))
    below = paper_eq18(lam1=2.0, P=160, B=100, N=np.inf, sigma=1.0)  # γ = 1.6, N = ∞
    mp_edge = ggn_batch_outlier(1.0, P=160, B=100, N=np.inf, noise_var=1.0, finite_N=False)
    assert mp_edge == pytest.approx((1 + np.sqrt(gamma)) ** 2)
    assert below - mp_edge == pytest.approx((1 - np.sqrt(gamma)) ** 2)
    # B = N: no noise, yet the printed formula moves the outlier by σ²
    assert paper_eq18(lam1=5.0, P=400, B=1000, N=1000, sigma=1.0) == pytest.approx(6.0)
    assert ggn_batch_outlier(5.0, P=400, B=1000, N=1000, noise_var=1.0) == pytest.approx(5.0)


def test_paper_eq18_sign_problem_without_its_threshold():
    # γσ² = 1.6 > λ₁ = 1.5: the denominator 1 − 1.6/1.5 = −1/15 is negative, and the outlier
    # branch returns (1.5 − 0.6)·(−15) = −13.5, a negative eigenvalue of a PSD matrix.
    kw = {"P": 400, "B": 200, "N": 1000, "sigma": 1.0}
    assert paper_eq18(lam1=1.5, threshold=False, **kw) == pytest.approx(-13.5)
    assert paper_eq18(lam1=1.6, threshold=False, **kw) == np.inf  # the pole λ₁ = γσ²
    # with the printed threshold that input falls in the sub-threshold branch
    assert paper_eq18(lam1=1.5, **kw) == pytest.approx(5.2)


def test_simulation_follows_baik_silverstein_not_paper_eq18():
    # Fresh samples (N = ∞), γ = P/B = 0.25, λ = 5σ²: Baik–Silverstein 5(1 + 0.25/4) = 5.3125,
    # Eq. 18 (5 + 0.75)/(1 − 0.05) = 6.053. Mean of 4 draws: sd = Paul's CLT sd / 2 ≈ 0.09.
    P, B, lam = 400, 1600, 5.0
    G, _ = _population(P, (lam,), 1.0, seed=21)
    top = np.mean([np.linalg.eigvalsh(batch_ggn_model(B, G_full=G, seed=22 + d))[-1]
                   for d in range(4)])
    sd = _bs_sd(lam, P / B, B) / 2
    standard = ggn_batch_outlier(lam, P=P, B=B, N=np.inf, noise_var=1.0)
    printed = paper_eq18(lam1=lam, P=P, B=B, N=np.inf, sigma=1.0)
    assert abs(top - standard) < 5 * sd
    assert abs(top - printed) > 5 * sd


def test_paper_eq18_bad_inputs_raise():
    with pytest.raises(ValueError, match="sigma"):
        paper_eq18(lam1=3.0, P=400, B=200, N=1000, sigma=0.0)
    with pytest.raises(ValueError, match="lam1"):
        paper_eq18(lam1=-1.0, P=400, B=200, N=1000, sigma=1.0)
    with pytest.raises(ValueError, match="B"):
        paper_eq18(lam1=3.0, P=400, B=2000, N=1000, sigma=1.0)
    with pytest.raises(TypeError, match="positional"):
        paper_eq18(3.0, 400, 200, 1000, 1.0)
    with pytest.raises(TypeError, match="sigma"):
        paper_eq18(lam1=3.0, P=400, B=200, N=1000, sigma="1")
