"""Learning-rate laws (Sec. 10–11): formulas, limits, power-law fits, bad input."""

import numpy as np
import pytest

from rmtlr.scaling import (
    adam_max_lr,
    crossover_batch_size,
    effective_batch_size,
    fit_power_law,
    implied_sigma_eps,
    linear_rule,
    min_damping,
    sgd_max_lr,
    sqrt_rule,
)

P, SIG, LAM = 10_000, 0.02, 1.5  # sqrt(P/B)σ = 2/sqrt(B): the outlier regime starts near B = 2


def test_effective_batch_size_limits():
    assert effective_batch_size(100, np.inf) == 100  # fresh samples (Remark 6): 𝔟 = B
    assert effective_batch_size(100, 200) == pytest.approx(200)  # 1/𝔟 = 1/100 − 1/200
    assert effective_batch_size(500, 500) == np.inf  # full batch: no noise
    with pytest.raises(ValueError, match="B \\(batch size\\) must satisfy 0 < B <= N"):
        effective_batch_size(600, 500)


def test_sgd_max_lr_matches_theorem4_by_hand():
    B, N = 64, 50_000
    b = 1 / (1 / B - 1 / N)
    s2 = P / b * SIG**2
    assert LAM > np.sqrt(s2)  # outlier branch
    lr = sgd_max_lr(B, N=N, lam1=LAM, P=P, sigma_eps=SIG)
    assert lr == pytest.approx(2 / (LAM + s2 / LAM), rel=1e-12)
    # Below the BBP threshold the top eigenvalue is the bulk edge 2 sqrt(P/𝔟)σ.
    small = sgd_max_lr(1, N=np.inf, lam1=0.5, P=P, sigma_eps=SIG)
    assert small == pytest.approx(2 / (2 * np.sqrt(P) * SIG), rel=1e-12)


def test_sgd_max_lr_saturates_at_2_over_lambda1_as_B_to_N():
    N = 10_000
    assert sgd_max_lr(N, N=N, lam1=LAM, P=P, sigma_eps=SIG) == pytest.approx(2 / LAM, rel=1e-12)
    lrs = sgd_max_lr(np.array([100, 1000, 9000]), N=N, lam1=LAM, P=P, sigma_eps=SIG)
    assert np.all(np.diff(lrs) > 0) and lrs[-1] < 2 / LAM


def test_sgd_max_lr_linear_in_noise_dominated_regime():
    # Paper's reading (threshold=False): α ≈ 2𝔟λ1/(Pσ²) when the noise term dominates,
    # so doubling a small B doubles α; the local exponent tends to 1 as B → 0.
    B = np.array([1e-3, 2e-3])
    lr = sgd_max_lr(B, N=np.inf, lam1=LAM, P=P, sigma_eps=SIG, threshold=False)
    assert lr[1] / lr[0] == pytest.approx(2.0, rel=1e-3)
    # With the threshold, small B sits on the bulk edge: α ∝ sqrt(B).
    lr_t = sgd_max_lr(np.array([0.1, 0.4]), N=np.inf, lam1=0.5, P=P, sigma_eps=SIG)
    assert lr_t[1] / lr_t[0] == pytest.approx(2.0, rel=1e-12)


def test_crossover_batch_size_halves_saturated_rate():
    Bs = crossover_batch_size(LAM, P=P, sigma_eps=SIG)
    assert Bs == pytest.approx(P * SIG**2 / LAM**2)
    # At 𝔟* the noise shift equals λ1, so α is half its B → ∞ value 2/λ1.
    lr = sgd_max_lr(Bs, N=np.inf, lam1=LAM, P=P, sigma_eps=SIG, threshold=False)
    assert lr == pytest.approx(1 / LAM)


def test_adam_max_lr_is_square_root_along_the_bulk_edge():
    lr = adam_max_lr(np.array([16, 64, 256]), N=np.inf, P=P, sigma_eps=SIG, delta=1e-8,
                     eta_edge=0.01)
    assert lr[1] / lr[0] == pytest.approx(2.0, rel=1e-12)
    assert lr[2] / lr[1] == pytest.approx(2.0, rel=1e-12)
    assert lr[0] == pytest.approx(np.sqrt(16) * (0.01 + 1e-8) / (np.sqrt(P) * SIG))


def test_adam_with_huge_damping_becomes_sgd_like():
    # δ → ∞: Adam's step is α g/δ, so its stable α/δ must equal SGD's 2/λ'1 (linear-then-
    # saturating in B, not square root). With η_top > 0 the ratio tends to SGD's as δ grows.
    B = np.array([8.0, 32, 128, 512])
    sgd = sgd_max_lr(B, N=50_000, lam1=LAM, P=P, sigma_eps=SIG)
    for delta, tol in ((1e3, 1e-3), (1e6, 1e-6)):
        adam = adam_max_lr(B, N=50_000, P=P, sigma_eps=SIG, delta=delta, eta_edge=1.0,
                           lam1=LAM, eta_top=1.0)
        np.testing.assert_allclose(adam / delta, sgd, rtol=tol * 1.01)


def test_min_damping_makes_eq28_marginal():
    a0, lam, eta = 0.01, 300.0, 0.5
    d = min_damping(a0, lam, eta)
    assert a0 * lam / (eta + d) == pytest.approx(2.0)  # Eq. 28 at equality
    assert min_damping(1e-6, 1.0, 1.0) == 0.0  # clipped: already stable without damping


def test_bad_noise_and_curvature_are_named():
    for sigma in (-1.0, np.nan, np.inf):
        for threshold in (True, False):
            with pytest.raises(ValueError, match=r"^sigma_eps \(per-entry Hessian noise"):
                sgd_max_lr(16, N=1000, lam1=1.0, P=100, sigma_eps=sigma, threshold=threshold)
    for lam in (np.nan, np.inf, [1.0, np.nan]):
        with pytest.raises(ValueError, match="lam_batch .* must be finite"):
            min_damping(0.1, lam)
    for eta in (np.nan, -1.0):
        with pytest.raises(ValueError, match="eta .* must be finite and >= 0"):
            min_damping(0.1, 1.0, eta)


@pytest.mark.parametrize(
    "call",
    [
        lambda: sgd_max_lr(64, 50_000, LAM, P, SIG),
        lambda: adam_max_lr(64, 50_000, P, SIG, 1e-8),
        lambda: crossover_batch_size(LAM, P, SIG),
        lambda: implied_sigma_eps(LAM, 2.0, P, 64, 50_000),
        lambda: fit_power_law([8, 16, 32], [0.1, 0.2, 0.4], 0.9),
    ],
)
def test_quantities_that_can_be_swapped_are_keyword_only(call):
    # Before, sgd_max_lr(B, P, lam1, N, σ) — P and N swapped — returned a wrong number.
    with pytest.raises(TypeError, match="positional argument"):
        call()


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: sgd_max_lr("64", N=1000, lam1=1.0, P=100, sigma_eps=0.1), TypeError, "B"),
        (lambda: sgd_max_lr(64, N=1000, lam1="1", P=100, sigma_eps=0.1), TypeError, "lam1"),
        (lambda: sgd_max_lr(64, N=1000, lam1=1.0, P=0.5, sigma_eps=0.1), ValueError, "P"),
        (lambda: sgd_max_lr(64, N=999.5, lam1=1.0, P=100, sigma_eps=0.1), ValueError, "N"),
        (lambda: adam_max_lr(64, N=1000, P=100, sigma_eps=0.1, delta="1e-8"), TypeError,
         "delta"),
        (lambda: adam_max_lr(64, N=1000, P=100, sigma_eps=0.1, delta=0.0, eta_edge=True),
         TypeError, "eta_edge"),
        (lambda: crossover_batch_size(1.0, P=100.5, sigma_eps=0.1), ValueError, "P"),
        (lambda: implied_sigma_eps(1.0, 2.0, P=100, B=16, N=True), TypeError, "N"),
        (lambda: linear_rule("128", 0.1), TypeError, "B"),
    ],
)
def test_bad_types_and_fractional_counts_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_implied_sigma_eps_inverts_theorem4():
    for B in (16, 256):
        lam_b = 2 / sgd_max_lr(B, N=50_000, lam1=LAM, P=P, sigma_eps=SIG)
        assert implied_sigma_eps(LAM, lam_b, P=P, B=B, N=50_000) == pytest.approx(SIG, rel=1e-10)


def test_rules():
    assert linear_rule(256, 0.1, 128) == pytest.approx(0.2)
    assert sqrt_rule(512, 0.0004, 128) == pytest.approx(0.0008)
    for rule in (linear_rule, sqrt_rule):
        with pytest.raises(ValueError, match="alpha0"):
            rule(128, 0.0)
        with pytest.raises(ValueError, match="alpha0"):
            rule(128, -0.1)
        with pytest.raises(ValueError, match="B \\(batch size\\)"):
            rule(0, 0.1)


def test_fit_power_law_exact_data():
    B = np.array([8, 16, 32, 64, 128])
    fit = fit_power_law(B, 0.003 * B**0.5)
    assert fit.exponent == pytest.approx(0.5, abs=1e-12)
    assert fit.prefactor == pytest.approx(0.003, rel=1e-10)
    assert fit.stderr == pytest.approx(0.0, abs=1e-12)  # a perfect fit has a zero-width interval


def test_fit_power_law_interval_has_nominal_coverage():
    # 400 synthetic sweeps with log-normal scatter: a correct 95% Student-t interval covers
    # the true exponent in 95% of them; binomial sd is sqrt(.95·.05/400) ≈ 0.011, so
    # [0.90, 0.99] is about ±4.5 sd.
    rng = np.random.default_rng(0)
    B = 2.0 ** np.arange(3, 11)
    for k in (0.5, 1.0):
        hits, est = 0, []
        for _ in range(400):
            lr = 0.01 * B**k * np.exp(0.2 * rng.standard_normal(B.size))
            f = fit_power_law(B, lr)
            hits += f.ci_low <= k <= f.ci_high
            est.append(f.exponent)
        assert 0.90 <= hits / 400 <= 0.99
        # Unbiased: mean of 400 slopes within 4 standard errors of the truth.
        se = 0.2 / np.sqrt(np.sum((np.log(B) - np.log(B).mean()) ** 2)) / np.sqrt(400)
        assert abs(np.mean(est) - k) < 4 * se


def test_fit_power_law_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law([8, 16], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        fit_power_law([8, 16, 32], [0.1, 0.2])
    with pytest.raises(ValueError, match="lr"):
        fit_power_law([8, 16, 32], [0.1, 0.0, 0.2])
    with pytest.raises(ValueError, match="confidence"):
        fit_power_law([8, 16, 32], [0.1, 0.2, 0.3], confidence=1.5)
