"""top_eigenpairs (block Lanczos) against dense eigh and SciPy's eigsh, multiplicities included.

Single-vector Lanczos sees each eigenspace in one direction, so on ``nn.Linear(60, 4)``
with the squared error (every eigenvalue has multiplicity 4) the old ``top_eigenpairs(k=3)``
returned the top three *distinct* eigenvalues [2.958, 2.958, 2.704]-like values instead of
three copies of the top one. Block Lanczos with block size ≥ k must return the true top k.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from torch import nn

from rmtlr.curvature import EigenResult, HessianOperator, MatrixOperator, lanczos, top_eigenpairs

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")


def linear_mse():
    """nn.Linear(60, 4) + MSE: H = (2/(4N)) Σ_i x̃_i x̃_iᵀ ⊗ I_4 (x̃ = [x, 1]), so every
    eigenvalue has multiplicity 4 exactly."""
    torch.manual_seed(0)
    model = nn.Linear(60, 4).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 60, generator=g, dtype=torch.float64)
    y = torch.randn(200, 4, generator=g, dtype=torch.float64)
    op = HessianOperator(model, nn.MSELoss(), (x, y))
    xt = torch.cat([x, torch.ones(200, 1, dtype=torch.float64)], dim=1)
    eigs = np.linalg.eigvalsh((xt.T @ xt).numpy() * 2 / (4 * 200))
    return op, np.sort(np.repeat(eigs, 4))[::-1]


def dense(op):
    return (op @ torch.eye(op.shape[0], dtype=op.dtype)).numpy()


def test_multiplicity_four_top_k_matches_eigh():
    op, eigs = linear_mse()
    H = dense(op)
    np.testing.assert_allclose(np.linalg.eigvalsh(H)[::-1], eigs, rtol=1e-10)  # the claim
    assert eigs[0] - eigs[4] > 0.05 * eigs[0]  # a real gap below the 4-fold top eigenvalue
    # The call: default step count (40 products, as before).
    res = top_eigenpairs(op, k=3, seed=0)
    np.testing.assert_allclose(res.values, eigs[:3], rtol=1e-4)
    # Single-vector Lanczos (the old method) at the same cost sees the top eigenvalue once
    # and returns the next distinct eigenvalues. (With many more steps rounding errors
    # seed the other directions of the eigenspace and copies appear late — not something
    # to rely on.)
    single = lanczos(op, 40, seed=0).ritz_values[::-1][:3]
    assert abs(single[1] - eigs[1]) > 0.05 * eigs[0]
    res = top_eigenpairs(op, k=3, num_steps=90, seed=0)
    np.testing.assert_allclose(res.values, eigs[:3], rtol=1e-8)
    assert res.block_size == 3 and res.converged.all()
    # The Ritz vectors are orthonormal eigenvectors of the 4-dimensional eigenspace.
    V = res.vectors.numpy()
    np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(H @ V, V * eigs[:3], atol=1e-8 * eigs[0])
    # k = 6 crosses into the next 4-fold eigenvalue: 4 copies, then 2.
    six = top_eigenpairs(op, k=6, num_steps=150, seed=1)
    np.testing.assert_allclose(six.values, eigs[:6], rtol=1e-8)
    # (SciPy's eigsh, a single-vector method, misses the copies here too: it returns the
    # distinct eigenvalues 1.127, 1.064, 1.047, ... — dense eigh is the reference.)


def test_network_hessian_top_and_bottom_match_scipy_eigsh_and_eigh():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (40,), generator=g)
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    eigs = np.linalg.eigvalsh(dense(op))
    lin = op.to_scipy()
    for which, sl, ref_which in (("largest", slice(None, -5, -1), "LA"),
                                 ("smallest", slice(0, 4), "SA")):
        res = top_eigenpairs(op, k=4, num_steps=72, which=which, seed=2)
        np.testing.assert_allclose(res.values, eigs[sl], rtol=1e-8, atol=1e-12)
        ref = np.sort(spla.eigsh(lin, k=4, which=ref_which, tol=1e-12,
                                 v0=np.ones(op.shape[0]))[0])
        ref = ref[::-1] if which == "largest" else ref
        np.testing.assert_allclose(res.values, ref, rtol=1e-8, atol=1e-12)


def test_residuals_are_the_true_residuals_and_flags_follow_the_tolerance():
    op, eigs = linear_mse()
    H = dense(op)
    res = top_eigenpairs(op, k=4, num_steps=24, seed=3)  # too few steps to converge fully
    V = res.vectors.numpy()
    true = np.linalg.norm(H @ V - V * res.values, axis=0)
    np.testing.assert_allclose(res.residual_norms, true, rtol=1e-6, atol=1e-14)
    assert res.norm_estimate == pytest.approx(np.abs(res.values).max(), rel=0.2)
    np.testing.assert_array_equal(res.converged,
                                  res.residual_norms <= res.tol * res.norm_estimate)
    assert res.tol == pytest.approx(np.sqrt(np.finfo(np.float64).eps))
    # Bauer–Fike: an eigenvalue of H lies within each residual of its Ritz value.
    for theta, r in zip(res.values, res.residual_norms):
        assert np.min(np.abs(eigs - theta)) <= r * (1 + 1e-8) + 1e-14
    assert not res.converged.all()  # 24 products are not enough here: the flags say so
    loose = top_eigenpairs(op, k=4, num_steps=24, seed=3, tol=1.0)
    assert loose.converged.all() and loose.tol == 1.0
    assert res.num_steps == 24 and res.num_matvecs == 28 and res.seconds > 0
    assert res.matvec_seconds <= res.seconds


def test_warns_when_the_block_may_hide_multiplicity():
    op, eigs = linear_mse()
    with pytest.warns(RuntimeWarning, match="found 2 times.*block size b = 2"):
        res = top_eigenpairs(op, k=4, block_size=2, num_steps=60, seed=0)
    # What it returned is wrong beyond the cluster, which is why it warns.
    np.testing.assert_allclose(res.values[:2], eigs[:2], rtol=1e-8)
    assert abs(res.values[2] - eigs[2]) > 0.05 * eigs[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        top_eigenpairs(op, k=4, num_steps=60, seed=0)  # b = k: nothing to warn about


def test_smallest_full_space_and_deflation():
    # Three eigenvalues, each 10 times: every block of 5 finds an invariant subspace early.
    rng = np.random.default_rng(5)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    eigs = np.repeat([3.0, 1.0, -2.0], 10)
    A = torch.from_numpy((Q * eigs) @ Q.T)
    res = top_eigenpairs(A, k=5, num_steps=30, seed=1)
    np.testing.assert_allclose(res.values, 3.0, rtol=1e-10)
    assert res.deflations > 0 and res.converged.all()
    low = top_eigenpairs(A, k=5, num_steps=30, seed=1, which="smallest")
    np.testing.assert_allclose(low.values, -2.0, rtol=1e-10)
    # A run over the whole space (P not a multiple of b: a partial last block) is exact.
    M = rng.standard_normal((7, 7))
    M = torch.from_numpy(M + M.T)
    full = top_eigenpairs(M, k=3, num_steps=7, block_size=3, seed=0)
    np.testing.assert_allclose(full.values, np.linalg.eigvalsh(M.numpy())[::-1][:3],
                               rtol=1e-10)


def test_k1_equals_single_vector_lanczos_and_result_is_frozen():
    A = torch.from_numpy(np.diag(np.linspace(1.0, 2.0, 50)) + 0.0)
    res = top_eigenpairs(MatrixOperator(A), num_steps=20, seed=4)
    run = lanczos(A, 20, seed=4)
    # Same start vector (the first column of the start block is Lanczos's), same space.
    assert res.values[0] == pytest.approx(run.ritz_values[-1], rel=1e-12)
    assert isinstance(res, EigenResult) and res.block_size == 1 and res.num_matvecs == 21
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.values = None


def test_bad_input():
    A = MatrixOperator(torch.eye(10, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 10\], got 0"):
        top_eigenpairs(A, 0)
    with pytest.raises(ValueError, match="k must be an integer in .*, got 2.7"):
        top_eigenpairs(A, 2.7)
    with pytest.raises(TypeError, match="k must be an integer in .*, got '2'"):
        top_eigenpairs(A, "2")
    with pytest.raises(ValueError, match=r"num_steps must be an integer in \[3, 10\]"):
        top_eigenpairs(A, 3, num_steps=2)
    with pytest.raises(ValueError, match=r"num_steps must be an integer in \[4, 10\]"):
        top_eigenpairs(A, 2, block_size=4, num_steps=3)
    assert top_eigenpairs(A, 2.0, num_steps=6.0).values.shape == (2,)  # whole floats: JSON
    with pytest.raises(ValueError, match="which"):
        top_eigenpairs(A, 1, which="largest magnitude")
    with pytest.raises(ValueError, match="tol"):
        top_eigenpairs(A, 1, tol=-1.0)
