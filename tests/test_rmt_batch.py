"""The batch-noise model (Eqs. 4–7), Theorem 4 and Theorem 10 against simulation.

Tolerances: an outlier of a spiked Wigner matrix with noise scale s fluctuates with sd
sqrt(2s²(1 − s²/θ²)/P) (Benaych-Georges, Guionnet & Maida 2011) and has an O(1/P) bias, so
we allow 5 sd; a bulk edge fluctuates on the Tracy–Widom scale s·P^(−2/3) (mean −1.21, sd
1.27 in those units), so we allow 5 s·P^(−2/3); an overlap fluctuates with sd ≈ 0.5/sqrt(P)
for θ ≥ 2s (measured: 0.50/sqrt(P) at P = 1000 over 200 draws), so we allow 5 × 0.5/sqrt(P).
Spikes are kept out of the critical window |θ − s| < 3 s P^(−1/3), where neither the outlier
nor the edge formula holds (Bloemendal & Virág 2013).
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmtlr.rmt.batch import (
    batch_noise_model,
    batch_noise_scale,
    batch_outlier,
    effective_batch_size,
    entry_variance,
    overlap,
    without_replacement_factor,
)
from rmtlr.rmt.ensembles import haar_orthonormal, wigner


def _spiked_h_emp(P, thetas, seed):
    V = haar_orthonormal(P, len(thetas), seed)
    return (V * np.asarray(thetas)) @ V.T, V


def _outlier_sd(theta, s, P):
    return np.sqrt(2 * s**2 * max(1 - s**2 / theta**2, 0.0) / P)


def _check_outliers(eigs, thetas, s, P):
    """Top outliers vs Theorem 4 (both signs) within 5 sd; exact when s = 0."""
    pos = np.sort([t for t in thetas if t > 0])[::-1]
    neg = np.sort([t for t in thetas if t < 0])
    sim = np.concatenate([np.sort(eigs)[::-1][: len(pos)], np.sort(eigs)[: len(neg)]])
    theo = np.concatenate([pos + s**2 / pos, neg + s**2 / neg])
    tol = 5 * np.array([_outlier_sd(t, s, P) for t in np.concatenate([pos, neg])]) + 1e-9
    assert np.all(np.abs(sim - theo) < tol), (sim, theo, tol)


# --- Gaussian-field mode ------------------------------------------------------------------

P_G, N_G = 1200, 4000
THETAS_G = (6.0, 3.5, -4.0)
SIGMA_G = np.sqrt(4.0 / P_G)  # P·σ_ε² = 4: noise radius 2·sqrt(4/𝔟), i.e. 4 at B = 1


@pytest.fixture(scope="module")
def gaussian_case():
    H, V = _spiked_h_emp(P_G, THETAS_G, seed=1)
    return H, V


@pytest.mark.parametrize("B", [1, 4, 16, 400, N_G])
def test_theorem4_gaussian_mode_across_B(gaussian_case, B):
    H, _ = gaussian_case
    Hb = batch_noise_model(H, B, N_G, SIGMA_G, seed=100 + B)
    eigs = np.linalg.eigvalsh(Hb)
    # The Gaussian mode uses Eq. 6's factor with a population (ddof=0) variance, which is
    # Theorem 4's 1/𝔟 with the (N−1)-normalised variance σ²·N/(N−1).
    sig_thm = SIGMA_G * np.sqrt(N_G / (N_G - 1))
    s = batch_noise_scale(P=P_G, B=B, N=N_G, sigma_eps=sig_thm)
    _check_outliers(eigs, THETAS_G, s, P_G)
    pred = batch_outlier(np.array(THETAS_G), P=P_G, B=B, N=N_G, sigma_eps=sig_thm)
    assert np.allclose(np.sort(pred), np.sort(np.asarray(THETAS_G) + s**2 / np.asarray(THETAS_G)))
    if B == N_G:  # no noise at all: the batch Hessian is the full one
        assert np.array_equal(Hb, H)


def test_theorem10_overlaps_gaussian_mode(gaussian_case):
    H, V = gaussian_case
    B = 1
    sig_thm = SIGMA_G * np.sqrt(N_G / (N_G - 1))
    s = batch_noise_scale(P=P_G, B=B, N=N_G, sigma_eps=sig_thm)
    _w, U = np.linalg.eigh(batch_noise_model(H, B, N_G, SIGMA_G, seed=7))
    # θ = 6 and θ = −4 have |θ|/s ≥ 2, where the overlap sd is ≤ 0.5/sqrt(P).
    sim = np.array([(U[:, -1] @ V[:, 0]) ** 2, (U[:, 0] @ V[:, 2]) ** 2])
    pred = overlap(np.array([6.0, -4.0]), P=P_G, B=B, N=N_G, sigma_eps=sig_thm)
    assert np.all(np.abs(sim - pred) < 5 * 0.5 / np.sqrt(P_G)), (sim, pred)
    assert np.allclose(pred, 1 - s**2 / np.array([36.0, 16.0]))


def test_subthreshold_spike_is_swallowed_by_the_edge():
    P, N, B = 1200, np.inf, 1
    # s = 2; θ = 1 is below threshold, outside the window (s − θ = 1 ≫ 3sP^(−1/3))
    sigma = np.sqrt(4.0 / P)
    H, V = _spiked_h_emp(P, (1.0,), seed=3)
    w, U = np.linalg.eigh(batch_noise_model(H, B, N, sigma, seed=4))
    s = batch_noise_scale(P=P, B=B, N=N, sigma_eps=sigma)
    assert batch_outlier(1.0, P=P, B=B, N=N, sigma_eps=sigma) == pytest.approx(2 * s)
    assert abs(w[-1] - 2 * s) < 5 * s * P ** (-2 / 3)
    # Below threshold the overlap is O(1/(P(1 − θ/s)²)) ≈ 4/P: far below 0.05.
    assert overlap(1.0, P=P, B=B, N=N, sigma_eps=sigma) == 0.0
    assert (U[:, -1] @ V[:, 0]) ** 2 < 0.05


def test_profile_mode_entry_variances():
    P, N, B = 400, 50, 10
    S = np.where(np.add.outer(np.arange(P) < P // 2, np.arange(P) < P // 2) == 1, 3.0, 1.0) / P
    eps = batch_noise_model(np.zeros((P, P)), B, N, profile=S, seed=5)
    f = without_replacement_factor(B, N)
    iu = np.triu_indices(P)
    for level in (1.0 / P, 3.0 / P):
        e = eps[iu][S[iu] == level]
        # sample variance of n Gaussians: relative sd sqrt(2/n)
        assert abs(np.mean(e**2) / (f * level) - 1) < 5 * np.sqrt(2 / e.size)
    assert np.allclose(eps, eps.T)


# --- per-sample mode: an actual set of N per-sample Hessians -----------------------------

P_S, N_S = 800, 16
THETAS_S = (5.0, 3.2, -4.0)


@pytest.fixture(scope="module")
def per_sample_case():
    H, V = _spiked_h_emp(P_S, THETAS_S, seed=11)
    # H_i = H_emp + W_i − mean(W): GOE perturbations with P·Var ≈ 8, centred so that the
    # H_i average exactly to H_emp. ε = Σ_i c_i W_i is then exactly GOE with variance
    # Σ c_i² = 1/B − 1/N times that of one W_i.
    W = np.stack([wigner(P_S, np.sqrt(8.0), seed=200 + i) for i in range(N_S)])
    W -= W.mean(axis=0)
    return H, V, H + W


@pytest.mark.parametrize("B", [2, 4, 8, 12, N_S])
def test_theorem4_per_sample_mode_across_B(per_sample_case, B):
    H, _, stack = per_sample_case
    sigma = np.sqrt(entry_variance(stack, ddof=1))
    s = batch_noise_scale(P=P_S, B=B, N=N_S, sigma_eps=sigma)
    Hb = batch_noise_model(H, B, N_S, per_sample=stack, seed=300 + B)
    _check_outliers(np.linalg.eigvalsh(Hb), THETAS_S, s, P_S)
    if B == N_S:
        assert np.allclose(Hb, H, atol=1e-12)


def test_per_sample_callable_matches_array(per_sample_case):
    H, _, stack = per_sample_case
    a = batch_noise_model(H, 4, N_S, per_sample=stack, seed=9)
    b = batch_noise_model(H, 4, N_S, per_sample=lambda i: stack[i], seed=9)
    assert np.array_equal(a, b)


def test_theorem10_overlaps_per_sample_mode(per_sample_case):
    H, V, stack = per_sample_case
    B = 4
    sigma = np.sqrt(entry_variance(stack, ddof=1))
    _w, U = np.linalg.eigh(batch_noise_model(H, B, N_S, per_sample=stack, seed=21))
    sim = np.array([(U[:, -1] @ V[:, 0]) ** 2, (U[:, 0] @ V[:, 2]) ** 2])
    pred = overlap(np.array([5.0, -4.0]), P=P_S, B=B, N=N_S, sigma_eps=sigma)  # |θ|/s ≥ 3
    assert np.all(np.abs(sim - pred) < 5 * 0.5 / np.sqrt(P_S)), (sim, pred)


def test_without_replacement_variance_by_monte_carlo():
    """Var[ε_jk] = (1/B − (B−1)/(B(N−1)))·Var_i H_i,jk (Eq. 6), not (1/B − 1/N)·Var_i."""
    N, B, M, P = 12, 5, 20000, 2
    rng = np.random.default_rng(0)
    stack = rng.gamma(2.0, size=(N, P, P))
    stack = stack + stack.transpose(0, 2, 1)
    H = stack.mean(axis=0)
    gen = np.random.default_rng(1)
    draws = [batch_noise_model(H, B, N, per_sample=stack, seed=gen)[0, 1] for _ in range(M)]
    eps = np.array(draws) - H[0, 1]
    var_hat = np.mean(eps**2)  # E ε = 0 exactly for sampling without replacement
    se = np.sqrt(np.var(eps**2) / M)  # standard error of a mean of M draws of ε²
    pop_var = np.var(stack[:, 0, 1])  # ddof = 0, Eq. 6's Var[H_i]
    exact = without_replacement_factor(B, N) * pop_var
    assert abs(var_hat - exact) < 5 * se
    # The approximation 1/𝔟 = 1/B − 1/N is 1/(N−1) ≈ 9% low here: resolvable at this M.
    assert abs(var_hat - pop_var / effective_batch_size(B, N)) > 5 * se
    # The same factor with the (N−1)-normalised variance is exactly 1/𝔟.
    assert exact == pytest.approx(np.var(stack[:, 0, 1], ddof=1) / effective_batch_size(B, N))


def test_without_replacement_factor_limits():
    assert without_replacement_factor(7, 7) == 0.0
    assert without_replacement_factor(7, np.inf) == pytest.approx(1 / 7)
    assert without_replacement_factor(10, 100) == pytest.approx(1 / 10 - 9 / (10 * 99))


def test_hessian_variance_matches_definition():
    rng = np.random.default_rng(2)
    stack = rng.standard_normal((5, 3, 3))
    dev = stack - stack.sum(axis=0) / 5
    by_hand = sum(np.sum(dev[:, j, k] ** 2) / 4 for j in range(3) for k in range(3)) / 9
    assert entry_variance(stack) == pytest.approx(by_hand)
    assert entry_variance(stack, ddof=0) == pytest.approx(by_hand * 4 / 5)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "B, N, match",
    [(0, 10, "B"), (-1, 10, "B"), (11, 10, "B"), (1, 0, "N"), (1, -5, "N"), (np.nan, 10, "B")],
)
def test_bad_batch_sizes_raise(B, N, match):
    H = np.eye(3)
    with pytest.raises(ValueError, match=match):
        batch_noise_model(H, B, N, 0.1)
    with pytest.raises(ValueError, match=match):
        overlap(1.0, P=3, B=B, N=N, sigma_eps=0.1)
    with pytest.raises(ValueError, match=match):
        without_replacement_factor(B, N)


def test_bad_noise_inputs_raise():
    H = np.eye(3)
    with pytest.raises(ValueError, match="sigma_eps"):
        batch_noise_model(H, 2, 10, -0.1)
    with pytest.raises(ValueError, match="sigma_eps"):
        overlap(1.0, P=3, B=2, N=10, sigma_eps=-0.1)
    with pytest.raises(ValueError, match="profile"):
        batch_noise_model(H, 2, 10, profile=-np.ones((3, 3)))
    with pytest.raises(ValueError, match="exactly one"):
        batch_noise_model(H, 2, 10, 0.1, profile=np.ones((3, 3)))
    with pytest.raises(ValueError, match="exactly one"):
        batch_noise_model(H, 2, 10)
    with pytest.raises(ValueError, match="symmetric"):
        batch_noise_model(np.triu(np.ones((3, 3))), 2, 10, 0.1)
    with pytest.raises(ValueError, match="average to H_emp"):
        batch_noise_model(H, 2, 4, per_sample=np.ones((4, 3, 3)))
    with pytest.raises(ValueError, match="shape"):
        batch_noise_model(H, 2, 4, per_sample=np.ones((5, 3, 3)))
    with pytest.raises(ValueError, match="B .*must be an integer >= 1, got 2.5"):
        batch_noise_model(H, 2.5, 4, per_sample=np.ones((4, 3, 3)))
    with pytest.raises(TypeError, match="B .*must be an integer >= 1, got '2'"):
        batch_noise_model(H, "2", 4, per_sample=np.ones((4, 3, 3)))
    with pytest.raises(ValueError, match="ddof"):
        entry_variance(np.ones((4, 3, 3)), ddof=2)
    with pytest.raises(ValueError, match="lam"):
        overlap(np.nan, P=3, B=2, N=10, sigma_eps=0.1)


@pytest.mark.parametrize("fn", [batch_outlier, overlap])
def test_p_b_n_sigma_cannot_be_passed_by_position(fn):
    # Before, batch_outlier(lam, P, B, N, σ_ε) with P and N swapped gave a wrong number.
    with pytest.raises(TypeError):
        fn(1.0, 10, 2, 1000, 0.1)
    with pytest.raises(TypeError):
        batch_noise_scale(10, 2, 1000, 0.1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"B": "32"}, TypeError, "B \\(batch size\\) must be a real number"),
        ({"B": True}, TypeError, "B \\(batch size\\)"),
        ({"N": "100"}, TypeError, "N \\(number of samples\\)"),
        ({"N": 100.5}, ValueError, "N \\(number of samples\\) must be a whole number"),
        ({"P": 0.5}, ValueError, "P \\(number of parameters\\) must be a whole number"),
        ({"P": Fraction(7, 2)}, ValueError, "P \\(number of parameters\\)"),
        ({"P": None}, TypeError, "P \\(number of parameters\\)"),
        ({"sigma_eps": "0.1"}, TypeError, "sigma_eps"),
        ({"sigma_eps": 0.1 + 0j}, TypeError, "sigma_eps"),
    ],
)
def test_strings_bools_and_fractional_counts_are_refused(kwargs, error, match):
    # Before, '32' and True were silently converted to 32.0 and 1.0 and P = 0.5 was used.
    args = {"P": 100, "B": 10, "N": 1000, "sigma_eps": 0.1, **kwargs}
    with pytest.raises(error, match=match):
        batch_outlier(1.0, **args)
    with pytest.raises(error, match=match):
        overlap(1.0, **args)


def test_whole_counts_of_any_real_type_are_accepted():
    ref = batch_outlier(2.0, P=100, B=10, N=1000, sigma_eps=0.1)
    for P in (100.0, np.int64(100), Fraction(100), 1e2):
        assert batch_outlier(2.0, P=P, B=10, N=1000, sigma_eps=0.1) == ref
    assert effective_batch_size(Fraction(1, 2), 10) == pytest.approx(1 / (2 - 0.1))


def test_effective_batch_size_refuses_a_string():
    with pytest.raises(TypeError, match="B \\(batch size\\)"):
        effective_batch_size("32", 100)


# --- properties -----------------------------------------------------------------------------

lams = st.floats(min_value=1e-3, max_value=1e3)
sigmas = st.floats(min_value=0.0, max_value=10.0)
Ps = st.integers(min_value=1, max_value=10**8)


@settings(max_examples=200, deadline=None)
@given(lam=lams, P=Ps, sigma=sigmas, N=st.integers(2, 10**6), data=st.data())
def test_outlier_properties(lam, P, sigma, N, data):
    B1 = data.draw(st.integers(1, N))
    B2 = data.draw(st.integers(B1, N))
    l1 = batch_outlier(lam, P=P, B=B1, N=N, sigma_eps=sigma)
    l2 = batch_outlier(lam, P=P, B=B2, N=N, sigma_eps=sigma)
    assert l1 >= lam * (1 - 1e-12)  # noise only pushes a positive outlier out
    assert l2 <= l1 * (1 + 1e-12)  # a larger batch never raises λ'
    kw = {"P": P, "N": N, "sigma_eps": sigma}
    assert batch_outlier(lam, B=N, **kw) == pytest.approx(lam)  # B → N: no noise
    assert batch_outlier(-lam, B=B1, **kw) == pytest.approx(-l1)  # symmetric for λ_P
    o1, o2 = overlap(lam, B=B1, **kw), overlap(lam, B=B2, **kw)
    assert 0.0 <= o1 <= o2 + 1e-12  # a larger batch never lowers the overlap
    assert o2 <= 1.0
    assert overlap(lam, P=P, B=N, N=N, sigma_eps=sigma) == pytest.approx(1.0)
