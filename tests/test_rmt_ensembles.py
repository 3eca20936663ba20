"""Samplers: normalisation of entries, symmetry, seeding, Haar vectors, spikes, profiles."""

import numpy as np
import pytest

from rmtlr.rmt import ensembles as ens


def test_wigner_is_symmetric_seeded_with_goe_variances():
    n, sigma = 400, 1.5
    h = ens.wigner(n, sigma, seed=1)
    assert np.array_equal(h, h.T)
    assert np.array_equal(h, ens.wigner(n, sigma, seed=1))
    assert not np.array_equal(h, ens.wigner(n, sigma, seed=2))
    off = h[np.triu_indices(n, 1)]
    # 79 800 off-diagonal entries of variance σ²/n: the sample variance has relative sd
    # √(2/79 800) ≈ 0.005, so 3% is 6 sd; the 400 diagonal ones (2σ²/n) have 7% sd → 30%.
    assert np.var(off) * n / sigma**2 == pytest.approx(1.0, rel=0.03)
    assert np.var(np.diag(h)) * n / (2 * sigma**2) == pytest.approx(1.0, rel=0.3)
    assert abs(off.mean()) < 5 * sigma / np.sqrt(n) / np.sqrt(off.size)


def test_wishart_is_psd_with_mean_trace_sigma2():
    p, n, sigma = 200, 500, 0.7
    w = ens.wishart(p, n, sigma, seed=3)
    assert w.shape == (p, p) and np.allclose(w, w.T)
    assert np.linalg.eigvalsh(w).min() > -1e-12
    # tr W/p = σ² × the mean of p·n squared N(0, 1) draws: relative sd √(2/(pn)) ≈ 0.004,
    # so 2% is 5 sd.
    assert np.trace(w) / p == pytest.approx(sigma**2, rel=0.02)
    assert np.array_equal(w, ens.wishart(p, n, sigma, seed=3))


def test_haar_orthonormal_columns_are_uniform_on_the_sphere():
    n, k = 300, 4
    v = ens.haar_orthonormal(n, k, seed=5)
    np.testing.assert_allclose(v.T @ v, np.eye(k), atol=1e-12)
    # Uniform unit vectors: E v_1² = 1/n with Var = 2(n−1)/(n²(n+2)) ≈ 2/n²; averaged over
    # 400 draws the mean has sd ≈ √2/(20 n), so 5 sd ≈ 0.35/n.
    first = [ens.haar_orthonormal(n, 1, seed=100 + s)[0, 0] ** 2 for s in range(400)]
    assert np.mean(first) == pytest.approx(1 / n, abs=0.35 / n)
    # The sign fix (diag(R) > 0) makes the law Haar, not biased by QR's sign convention.
    signs = [np.sign(ens.haar_orthonormal(n, 1, seed=600 + s)[0, 0]) for s in range(400)]
    assert abs(np.mean(signs)) < 5 / np.sqrt(400)


def test_spiked_adds_the_low_rank_signal_exactly():
    n = 100
    noise = ens.wigner(n, 1.0, seed=7)
    m, v = ens.spiked([3.0, -2.0], noise, seed=8)
    np.testing.assert_allclose(
        m - noise, 3.0 * np.outer(v[:, 0], v[:, 0]) - 2.0 * np.outer(v[:, 1], v[:, 1]), atol=1e-12
    )
    e = np.zeros((n, 1))
    e[0, 0] = 1.0
    m2, v2 = ens.spiked([5.0], noise, vectors=e)
    assert m2[0, 0] == pytest.approx(noise[0, 0] + 5.0) and np.array_equal(v2, e)


def test_block_profile_sizes_and_values():
    S = np.array([[1.0, 0.2], [0.2, 3.0]])
    prof = ens.block_profile(S, [0.3, 0.7], 10)
    assert prof.shape == (10, 10) and np.array_equal(prof, prof.T)
    assert prof[0, 0] == 1.0 and prof[0, 9] == 0.2 and prof[9, 9] == 3.0
    assert np.sum(prof[:, 0] == 1.0) == 3  # floor(0.3·10) indices in block 1


def test_variance_profile_matrix_entry_variances():
    n = 600
    S = ens.block_profile([[0.5, 2.0], [2.0, 4.0]], [0.5, 0.5], n)
    x = ens.variance_profile_matrix(S, seed=9)
    assert np.array_equal(x, x.T)
    h = n // 2
    blocks = {
        (0, 0): x[:h, :h][np.triu_indices(h, 1)],
        (0, 1): x[:h, h:].ravel(),
        (1, 1): x[h:, h:][np.triu_indices(h, 1)],
    }
    # Each block has ≥ 44 850 independent entries: relative sd of the sample variance ≤ 0.007,
    # so 4% is > 5 sd.
    for (a, b), vals in blocks.items():
        assert np.var(vals) * n == pytest.approx(S[a * h, b * h], rel=0.04)


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (0.5, ValueError), ([], TypeError),
                                         ("0", TypeError), (True, TypeError)])
def test_bad_seeds_are_refused(seed, error):
    # Before, [] was accepted by numpy as an empty entropy list (a silently unseeded draw).
    with pytest.raises(error, match="seed"):
        ens.as_generator(seed)
    with pytest.raises(error, match="seed"):
        ens.wigner(4, seed=seed)


def test_seeds_and_generators_reproduce():
    assert np.array_equal(ens.wigner(5, seed=np.int64(3)), ens.wigner(5, seed=3))
    assert np.array_equal(ens.wigner(5, seed=3.0), ens.wigner(5, seed=3))  # JSON gives 3.0
    gen = np.random.default_rng(3)
    assert ens.as_generator(gen) is gen


def test_bad_input_raises():
    with pytest.raises(ValueError, match="n"):
        ens.wigner(0)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 10.5"):
        ens.wigner(10.5)
    with pytest.raises(TypeError, match="n must be an integer"):
        ens.wishart(3, "10")
    assert ens.wigner(10.0, seed=0).shape == (10, 10)
    with pytest.raises(TypeError, match="sigma"):
        ens.wigner(10, "1.0")
    with pytest.raises(ValueError, match="sigma"):
        ens.wigner(10, -1.0)
    with pytest.raises(ValueError, match="p"):
        ens.wishart(0, 10)
    with pytest.raises(ValueError, match="k"):
        ens.haar_orthonormal(3, 5)
    with pytest.raises(ValueError, match="symmetric"):
        ens.spiked([1.0], np.triu(np.ones((4, 4))))
    with pytest.raises(ValueError, match="orthonormal"):
        ens.spiked([1.0], np.eye(4), vectors=np.ones((4, 1)))
    with pytest.raises(ValueError, match="columns"):
        ens.spiked([1.0, 2.0], np.eye(4), vectors=np.eye(4)[:, :1])
    with pytest.raises(ValueError, match="fractions"):
        ens.block_profile(np.eye(2), [0.5, 0.6], 10)
    with pytest.raises(ValueError, match="S"):
        ens.variance_profile_matrix(-np.ones((3, 3)))
    with pytest.raises(ValueError, match="S"):
        ens.variance_profile_matrix(np.array([[1.0, 2.0], [0.0, 1.0]]))
