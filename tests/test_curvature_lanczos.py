"""Lanczos, SLQ, Hutchinson and the Hessian variance against dense references (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from torch import nn

from rmtlr.curvature import (
    HessianOperator,
    MatrixOperator,
    hessian_variance,
    hutchinson_trace,
    lanczos,
    slq_density,
    slq_vector_seeds,
    top_eigenpairs,
)


def effective_batch_size(b, N):
    """𝔟(b, N) = b/(1 − b/N) (Granziol et al. 2022, Eq. 6), written out as a reference."""
    return b / (1 - b / N)


def dense_entry_variance(per_sample):
    """Mean over entries of the sample variance (ddof=1) of per-sample matrices."""
    return float(np.mean(np.var(np.asarray(per_sample), axis=0, ddof=1)))

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")


def matrix_with_spectrum(eigs, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigs), len(eigs))))
    return torch.from_numpy((Q * np.asarray(eigs, dtype=float)) @ Q.T)


def spiked(P=200, seed=0):
    rng = np.random.default_rng(seed)
    eigs = np.concatenate([[10.0, 7.0, 5.0, -4.0, -3.0], rng.uniform(1.0, 2.0, P - 5)])
    return matrix_with_spectrum(eigs, seed), np.sort(eigs)


def start_vector(P, seed):
    """The start vector lanczos(seed=s) draws (documented: CPU Gaussian from seed)."""
    z = torch.randn(P, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return z / z.norm()


def test_lanczos_full_run_reproduces_every_eigenvalue():
    A, eigs = spiked()
    res = lanczos(MatrixOperator(A), 200, seed=3)
    # m = P steps with full re-orthogonalisation tridiagonalise A exactly up to rounding
    # (~1e-15·‖A‖); eigenvalues here are ≥ 1 in modulus, so 1e-8 relative is loose.
    np.testing.assert_allclose(res.ritz_values, eigs, rtol=1e-8)
    assert res.restarts == 0 and abs(res.ritz_weights.sum() - 1) < 1e-12


def test_lanczos_extremes_converge_early_and_ritz_vectors_are_eigenvectors():
    A, eigs = spiked()
    res = lanczos(MatrixOperator(A), 60, seed=1, return_vectors=True)
    # Kaniel–Paige: isolated extremes converge geometrically in the gap ratio; with gaps
    # ≥ 1 against a spectral width of 14, 60 steps reach machine precision.
    np.testing.assert_allclose(res.ritz_values[-3:], eigs[-3:], rtol=1e-8)
    np.testing.assert_allclose(res.ritz_values[:2], eigs[:2], rtol=1e-8)
    y = res.ritz_vectors[:, -1]
    assert float((A @ y - res.ritz_values[-1] * y).norm()) < 1e-8
    assert abs(float(y.norm()) - 1) < 1e-10
    top = top_eigenpairs(MatrixOperator(A), k=3, num_steps=60, seed=1)
    np.testing.assert_allclose(top.values, eigs[::-1][:3], rtol=1e-8)
    assert top.vectors.shape == (200, 3) and top.converged.all()
    low = top_eigenpairs(A, k=2, num_steps=60, which="smallest")
    np.testing.assert_allclose(low.values, eigs[:2], rtol=1e-8)


def test_lanczos_basis_stays_orthonormal_on_a_clustered_spectrum():
    # Plain Lanczos loses orthogonality once a Ritz value converges (Paige 1971), which
    # shows up as ghost copies of the top eigenvalue; full re-orthogonalisation keeps
    # ‖VᵀV − I‖ at rounding level (≈ m·eps ≈ 1e-14 here; 1e-10 is generous).
    rng = np.random.default_rng(8)
    eigs = np.concatenate([[50.0, 40.0], rng.uniform(0.0, 1.0, 398)])
    A = matrix_with_spectrum(eigs, seed=8)
    res = lanczos(MatrixOperator(A), 150, seed=2, return_vectors=True)
    V = res.ritz_vectors
    assert float((V.T @ V - torch.eye(150, dtype=torch.float64)).abs().max()) < 1e-10
    assert np.sum(np.abs(res.ritz_values - 50.0) < 1e-6) == 1  # no ghost copies


def test_lanczos_restarts_after_breakdown():
    # Three distinct eigenvalues: the Krylov space of any start vector has dimension 3,
    # so β_3 = 0 and the run must continue in the orthogonal complement.
    eigs = np.repeat([3.0, 1.0, -2.0], 10)
    A = matrix_with_spectrum(eigs, seed=5)
    res = lanczos(MatrixOperator(A), 30, seed=0)
    assert res.restarts >= 1
    np.testing.assert_allclose(res.ritz_values, np.sort(eigs), rtol=1e-8, atol=1e-8)
    # The quadrature of the start vector only sees its own invariant subspace; it is still
    # exact: Σ τ θ^k = q₁ᵀ A^k q₁.
    q = start_vector(30, 0)
    for k in range(1, 5):
        exact = float(q @ torch.linalg.matrix_power(A, k) @ q)
        assert abs(np.sum(res.ritz_weights * res.ritz_values ** k) - exact) < 1e-10 * 3.0 ** k


def small_net_operator():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (40,), generator=g)
    return HessianOperator(model, nn.CrossEntropyLoss(), (x, y))


def test_lanczos_on_network_hessian_matches_eigh_and_scipy_eigsh():
    op = small_net_operator()
    P = op.shape[0]
    H = torch.stack([op @ e for e in torch.eye(P, dtype=torch.float64)], dim=1)
    eigs = np.linalg.eigvalsh(H.numpy())
    res = lanczos(op, P, seed=0)
    top = eigs[-3:]
    np.testing.assert_allclose(res.ritz_values[-3:], top, rtol=1e-8)
    np.testing.assert_allclose(res.ritz_values[:3], eigs[:3], rtol=1e-8)
    ref = np.sort(spla.eigsh(op.to_scipy(), k=3, which="LA", tol=1e-12,
                             v0=np.ones(P))[0])
    np.testing.assert_allclose(res.ritz_values[-3:], ref, rtol=1e-8)


def test_slq_quadrature_is_exact_for_low_degree_moments():
    A, _ = spiked(P=200, seed=2)
    dens = slq_density(MatrixOperator(A), num_steps=20, num_vectors=8, seed=10)
    for k in range(1, 6):  # Gauss quadrature with m = 20 nodes is exact up to degree 39
        exact = np.mean([float(start_vector(200, s) @ torch.linalg.matrix_power(A, k)
                               @ start_vector(200, s)) for s in slq_vector_seeds(10, 8)])
        assert abs(dens.moment(k) - exact) < 1e-10 * 10.0 ** k


def test_slq_seeds_give_independent_vector_sets():
    """Replicate runs (seed 0, 1, ...) must not share start vectors; more vectors extend
    the set drawn with fewer."""
    s0, s1 = slq_vector_seeds(0, 10), slq_vector_seeds(1, 10)
    assert not set(s0) & set(s1)
    assert slq_vector_seeds(0, 4) == s0[:4]
    assert slq_vector_seeds(None, 3) == s0[:3]


def test_slq_moments_match_traces_of_powers_within_monte_carlo_error():
    A, _ = spiked(P=200, seed=2)
    P, n_v = 200, 30
    dens = slq_density(MatrixOperator(A), num_steps=20, num_vectors=n_v, seed=0)
    for k in (1, 2, 3, 4):
        M = torch.linalg.matrix_power(A, k).numpy()
        mean = np.trace(M) / P
        # q uniform on the sphere: Var[qᵀMq] = 2/(P+2)·(tr(M²)/P − (tr M/P)²); 5 sd of
        # the mean of n_v draws.
        var = 2.0 / (P + 2) * (np.trace(M @ M) / P - mean**2)
        assert abs(dens.moment(k) - mean) < 5 * np.sqrt(var / n_v), k


def test_slq_density_edge_zero_mass_and_normalisation():
    P = 2000
    rng = np.random.default_rng(4)
    bulk = np.concatenate([np.zeros(P // 2), rng.uniform(1.0, 2.0, P // 2)])
    A = matrix_with_spectrum(bulk, seed=4)
    dens = slq_density(MatrixOperator(A), num_steps=30, num_vectors=4, seed=0, zero_tol=1e-6)
    # ∫ρ = Σ weights = 1 up to the Gaussian tails beyond ±5σ of the grid (< 1e-6) and the
    # trapezoid error on 1000 points.
    assert abs(np.trapezoid(dens.density, dens.grid) - 1) < 1e-3
    np.testing.assert_allclose(dens.density_on(dens.grid), dens.density, rtol=1e-12)
    g2 = np.linspace(dens.grid[0] - 10 * dens.kernel_width, dens.grid[-1] + 10 * dens.kernel_width, 2000)
    wide = dens.density_on(g2, 2 * dens.kernel_width)  # a wider kernel on a wider grid: still mass 1
    assert abs(np.trapezoid(wide, g2) - 1) < 1e-3
    # Null space: weight of q on it ~ Beta(P/4, P/4) with mean 1/2 and sd ≈ 1/sqrt(2P)=0.016
    # per vector; 5 sd of a mean of 4.
    assert abs(dens.zero_mass - 0.5) < 5 * 0.016 / 2
    # No outliers: the heavy Ritz values reach the edge of the bulk at 2. Gauss nodes
    # near a square-root-free (uniform) edge sit within O(1/m²)·width of it.
    assert 1.9 < dens.bulk_edge <= 2.0 + 1e-8
    assert abs(dens.bulk_edge_lower) < 1e-8
    assert dens.outliers().size == 0


def test_hutchinson_trace_within_its_standard_error():
    A, _ = spiked(P=200, seed=6)
    n = 400
    est = hutchinson_trace(MatrixOperator(A), n, seed=1)
    Anp = A.numpy()
    # Rademacher probes: Var = 2(‖A‖_F² − Σ A_ii²)/n exactly; 5 sd.
    sd = np.sqrt(2 * (np.sum(Anp**2) - np.sum(np.diag(Anp) ** 2)) / n)
    assert abs(est.trace - np.trace(Anp)) < 5 * sd
    assert 0.5 * sd < est.stderr < 2 * sd  # the reported error estimates the true one


class Quadratic(nn.Module):
    """ℓ_i(w) = ½ wᵀ X_i w: the per-sample Hessian of sample i is exactly X_i."""

    def __init__(self, P):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, P, dtype=torch.float64))

    def forward(self, X):
        return 0.5 * torch.einsum("p,npq,q->n", self.w, X, self.w)


def known_per_sample(N=40, P=12, seed=7):
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(N, P, P, generator=g, dtype=torch.float64)
    base = torch.randn(P, P, generator=g, dtype=torch.float64)
    return (G + G.transpose(1, 2)) / 2 + (base + base.T)


def test_hessian_variance_per_sample_matches_known_matrices():
    N, P, n_z = 40, 12, 400
    X = known_per_sample(N, P)
    # double-backward caches the one-batch graph; per-sample products must bypass it.
    op = HessianOperator(Quadratic(P), lambda out, y: out.mean(), (X, torch.zeros(N)),
                         method="double-backward")
    res = hessian_variance(op, n_z, per_sample=True, seed=3)
    D = X - X.mean(0)
    Q = torch.einsum("nij,njk->ik", D, D) / N  # mean_i (H_i − H)²
    g = torch.Generator().manual_seed(3)
    zs = []
    for _ in range(n_z):
        z = torch.randn(P, generator=g, dtype=torch.float64)
        zs.append(z / z.norm())
    exact = np.mean([float(z @ Q @ z) for z in zs])
    assert abs(res.sigma2 - exact) < 1e-10 * exact  # Algorithm 1 on the same z, exactly
    # σ² → tr(Q)/P; sphere variance 2/(P+2)·(tr(Q²)/P − (tr Q/P)²), 5 sd of the mean.
    Qn = Q.numpy()
    mean = np.trace(Qn) / P
    sd = np.sqrt(2 / (P + 2) * (np.trace(Qn @ Qn) / P - mean**2) / n_z)
    assert abs(res.sigma2 - mean) < 5 * sd
    # Mapping to Theorem 4's σ_ε (per-entry variance, ddof=1): σ_ε² = σ²·𝔟(1, N)/P.
    target = dense_entry_variance(X.numpy())
    assert abs(res.sigma_eps**2 - target) < 5 * sd * effective_batch_size(1, N) / P
    assert res.num_units == N and res.unit_size == 1.0 and 0 < res.stderr < 5 * sd


def test_hessian_variance_per_minibatch_and_partition_mapping():
    N, P, b = 40, 12, 8
    X = known_per_sample(N, P)
    batches = [(X[i:i + b], torch.zeros(b)) for i in range(0, N, b)]
    op = HessianOperator(Quadratic(P), lambda out, y: out.mean(), batches)
    res = hessian_variance(op, 50, per_sample=False, seed=0)
    Hb = torch.stack([X[i:i + b].mean(0) for i in range(0, N, b)])
    D = Hb - X.mean(0)
    Q = torch.einsum("nij,njk->ik", D, D) / Hb.shape[0]
    g = torch.Generator().manual_seed(0)
    zs = [z / z.norm() for z in (torch.randn(P, generator=g, dtype=torch.float64) for _ in range(50))]
    assert abs(res.sigma2 - np.mean([float(z @ Q @ z) for z in zs])) < 1e-10 * res.sigma2
    assert res.unit_size == b and res.num_units == N // b
    assert abs(res.sigma_eps**2 - res.sigma2 * effective_batch_size(b, N) / P) < 1e-12


def test_hessian_variance_sigma_eps_is_unbiased_over_random_partitions():
    """σ_ε² = σ²·𝔟(b, N)/P is exact in expectation over random partitions into batches of b
    (Eq. 6). The library's own σ_ε over 300 random partitions (2 vectors each) must average
    to the dense per-entry variance (ddof=1); the spread of the 300 values gives a 5-sd
    band. Mapping with b instead of 𝔟(b, N) would be 1/(1 − b/N) = 4/3 too small here."""
    N, P, b = 24, 6, 6
    X = known_per_sample(N, P, seed=11)
    model = Quadratic(P)
    rng = np.random.default_rng(0)
    vals = []
    for r in range(300):
        perm = torch.from_numpy(rng.permutation(N))
        parts = [(X[perm[i:i + b]], torch.zeros(b)) for i in range(0, N, b)]
        op = HessianOperator(model, lambda out, y: out.mean(), parts, method="double-backward")
        vals.append(hessian_variance(op, 2, per_sample=False, seed=r).sigma_eps ** 2)
    vals = np.asarray(vals)
    target = dense_entry_variance(X.numpy())
    band = 5 * vals.std() / np.sqrt(len(vals))
    assert abs(vals.mean() - target) < band
    assert band < 0.25 * target  # the band resolves the 𝔟 factor (b/𝔟 = 0.75)


def test_density_and_lanczos_bad_input():
    A, _ = spiked(P=20)
    op = MatrixOperator(A)
    with pytest.raises(ValueError, match="num_steps"):
        lanczos(op, 0)
    with pytest.raises(ValueError, match="num_steps"):
        lanczos(op, 21)
    with pytest.raises(ValueError, match="num_steps must be an integer in .*, got 2.5"):
        lanczos(op, 2.5)
    with pytest.raises(TypeError, match="num_steps must be an integer"):
        lanczos(op, "5")
    with pytest.raises(ValueError, match="k must be an integer"):
        top_eigenpairs(op, k=2.7)
    with pytest.raises(ValueError, match="seed"):
        lanczos(op, 3, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        slq_density(op, 3, seed=0.5)
    with pytest.raises(TypeError, match="seed"):
        slq_density(op, 3, seed="0")
    with pytest.raises(ValueError, match="non-zero"):
        lanczos(op, 3, v0=torch.zeros(20, dtype=torch.float64))
    with pytest.raises(ValueError, match="k must"):
        top_eigenpairs(op, 0)
    with pytest.raises(ValueError, match="num_vectors"):
        slq_density(op, 5, 0)
    with pytest.raises(ValueError, match="kernel_width"):
        slq_density(op, 5, 1, kernel_width=-1.0)
    with pytest.raises(ValueError, match="num_vectors"):
        hutchinson_trace(op, 1)
    with pytest.raises(TypeError, match="HessianOperator"):
        hessian_variance(op, 4)
    with pytest.raises(TypeError, match="op must be"):
        lanczos("matrix", 3)
