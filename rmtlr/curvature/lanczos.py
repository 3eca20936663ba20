"""Lanczos with full re-orthogonalisation on flat vectors (Golub & Van Loan, Sec. 10.1).

m steps from a unit start vector q₁ build an orthonormal basis Q = [q₁ … q_m] of the
Krylov space and the tridiagonal T = QᵀAQ (α on the diagonal, β off it). The eigenvalues
θ_k of T (Ritz values) approximate the extreme eigenvalues of A; the squared first
components τ_k = (e₁ᵀy_k)² of its eigenvectors (Ritz weights) are the Gauss-quadrature
weights of the spectral measure of A seen from q₁ (Golub & Meurant 2010), the basis of
stochastic Lanczos quadrature. This is how Granziol et al. (2022, Sec. 4 and App.) measure
network spectra: m = 100, one random start, full re-orthogonalisation.

Vectors live on the operator's device in its dtype; T is accumulated and diagonalised in
float64. Each new vector, after the three-term recurrence, is re-orthogonalised against the
whole basis by classical Gram–Schmidt, with a second pass when the first removed much of
its norm (the DGKS criterion: twice is enough, Giraud et al. 2005). If β ≈ 0 (an invariant subspace was
found) the run restarts from a random vector orthogonal to the basis, with β = 0 in T.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from rmtlr.curvature.base import CurvatureOperator, MatrixOperator
from rmtlr.progress import progress_bar

__all__ = ["LanczosResult", "lanczos", "top_eigenpairs"]


@dataclass
class LanczosResult:
    """Output of :func:`lanczos`.

    Attributes
    ----------
    ritz_values: θ_k, ascending (float64 NumPy array of length m).
    ritz_weights: τ_k = (e₁ᵀ y_k)², summing to 1 (float64 NumPy array).
    alpha, beta: the tridiagonal T (diagonal of length m, off-diagonal of length m − 1).
    ritz_vectors: P×m tensor of Ritz vectors Q y_k (columns in the order of ritz_values),
        or ``None`` unless requested.
    restarts: how many times β ≈ 0 forced a restart.
    matvec_seconds, total_seconds: time inside the operator's products and in all.
    """

    ritz_values: np.ndarray
    ritz_weights: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    ritz_vectors: torch.Tensor | None
    restarts: int
    matvec_seconds: float
    total_seconds: float


def _as_operator(op) -> CurvatureOperator:
    if isinstance(op, CurvatureOperator):
        return op
    if isinstance(op, (torch.Tensor, np.ndarray)):
        return MatrixOperator(op)
    raise TypeError("op must be a CurvatureOperator or a dense symmetric matrix, "
                    f"got {type(op).__name__}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _orthogonalise(w: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """Classical Gram–Schmidt against the rows of Q, repeated once if needed (DGKS).

    A second pass runs when the first removed more than 1 − 1/√2 of the norm; after it
    w is orthogonal to working precision ("twice is enough": Daniel, Gragg, Kaufman &
    Stewart 1976; Giraud et al. 2005). The criterion is the one ARPACK uses.
    """
    # Each pass reads the basis twice (Q w, then Qᵀ h); addmv fuses the subtraction, saving
    # a P-vector temporary: the loop is memory-bound, so fewer passes over memory is faster.
    before = torch.linalg.vector_norm(w)
    w = torch.addmv(w, Q.T, torch.mv(Q, w), alpha=-1)
    if torch.linalg.vector_norm(w) < _DGKS * before:
        w = torch.addmv(w, Q.T, torch.mv(Q, w), alpha=-1)
    return w


_DGKS = 1 / 2 ** 0.5


def lanczos(op, num_iters: int, v0: torch.Tensor | None = None, *, seed: int | None = None,
            return_vectors: bool = False, breakdown_tol: float | None = None,
            progress: bool | None = None) -> LanczosResult:
    r"""Run m = ``num_iters`` Lanczos steps on a symmetric operator.

    Recurrence (Golub & Van Loan 2013, Alg. 10.1.1): β_j q_{j+1} = A q_j − α_j q_j −
    β_{j−1} q_{j−1}, α_j = q_jᵀ A q_j, with every new vector fully re-orthogonalised
    against q_1 … q_j (at most twice, by the DGKS criterion).

    Parameters
    ----------
    op: a :class:`~rmtlr.curvature.CurvatureOperator` (or a dense symmetric matrix).
    num_iters: m, 1 ≤ m ≤ P.
    v0: start vector (normalised here); default a Gaussian vector drawn from ``seed``.
    seed: seed of the start vector and of restart vectors (drawn on the CPU, so the same
        seed gives the same run on every device and on every rank of a distributed job).
    return_vectors: also return the P×m Ritz vectors.
    breakdown_tol: restart when β_j < breakdown_tol·max(|α|, |β|); default 100·machine
        epsilon of the operator's dtype.
    progress: tqdm bar over steps; None (default) shows it unless ``TQDM_DISABLE`` is set or
        pytest runs (:func:`rmtlr.progress.progress_enabled`).
    """
    t_start = time.perf_counter()
    op = _as_operator(op)
    P = op.shape[0]
    m = int(num_iters)
    if not 1 <= m <= P:
        raise ValueError(f"num_iters must satisfy 1 <= num_iters <= P = {P}, got {num_iters}")
    dtype, device = op.dtype, op.device
    eps = torch.finfo(dtype).eps
    tol = 100 * eps if breakdown_tol is None else float(breakdown_tol)
    if not tol >= 0:
        raise ValueError(f"breakdown_tol must be >= 0, got {breakdown_tol}")
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))

    def random_vector():
        return torch.randn(P, generator=gen, dtype=torch.float64).to(device, dtype)

    q = random_vector() if v0 is None else op.check_vector(v0, "v0").clone()
    norm = torch.linalg.vector_norm(q)
    if not norm > 0:
        raise ValueError("v0 must be a non-zero vector")
    Q = torch.empty((m, P), dtype=dtype, device=device)
    Q[0] = q / norm
    alpha = np.zeros(m)
    beta = np.zeros(max(m - 1, 0))
    restarts = 0
    t_mv = 0.0
    scale = 0.0
    steps = progress_bar(range(m), desc="Lanczos", progress=progress)
    for j in steps:
        _sync(device)
        t0 = time.perf_counter()
        w = op.matvec(Q[j])
        _sync(device)
        t_mv += time.perf_counter() - t0
        a = float(torch.dot(Q[j], w))
        alpha[j] = a
        scale = max(scale, abs(a))
        if j == m - 1:
            break
        # Three-term recurrence first, so the full pass only removes rounding-level drift.
        w = torch.add(w, Q[j], alpha=-a)  # out of place: an operator may return its input
        if j > 0:
            w.add_(Q[j - 1], alpha=-beta[j - 1])
        w = _orthogonalise(w, Q[: j + 1])
        b = float(torch.linalg.vector_norm(w))
        scale = max(scale, b)
        if b <= tol * max(scale, 1e-300):
            # Invariant subspace: continue in its orthogonal complement (T splits there).
            restarts += 1
            beta[j] = 0.0
            w = _orthogonalise(_orthogonalise(random_vector(), Q[: j + 1]), Q[: j + 1])
            Q[j + 1] = w / torch.linalg.vector_norm(w)
        else:
            beta[j] = b
            torch.div(w, b, out=Q[j + 1])
    theta, Y = scipy.linalg.eigh_tridiagonal(alpha, beta)
    weights = Y[0] ** 2
    vectors = None
    if return_vectors:
        vectors = Q.T @ torch.as_tensor(Y, dtype=dtype, device=device)
    return LanczosResult(theta, weights, alpha, beta, vectors, restarts, t_mv,
                         time.perf_counter() - t_start)


def top_eigenpairs(op, k: int = 1, steps: int | None = None, *, seed: int | None = None,
                   which: str = "largest", progress: bool | None = None):
    """The k largest (or smallest) eigenvalues and eigenvectors of ``op`` by Lanczos.

    Extreme Ritz pairs converge first (Kaniel–Paige theory, Golub & Van Loan 2013,
    Sec. 10.1.5); ``steps`` Lanczos iterations (default min(P, max(2k + 20, 40))).

    Returns
    -------
    (values, vectors): float64 NumPy array of length k (largest first for ``"largest"``,
    smallest first for ``"smallest"``) and the P×k tensor of unit Ritz vectors.
    """
    op = _as_operator(op)
    P = op.shape[0]
    if not 1 <= int(k) <= P:
        raise ValueError(f"k must satisfy 1 <= k <= P = {P}, got {k}")
    if which not in ("largest", "smallest"):
        raise ValueError(f"which must be 'largest' or 'smallest', got {which!r}")
    m = min(P, max(2 * int(k) + 20, 40)) if steps is None else int(steps)
    if not int(k) <= m <= P:
        raise ValueError(f"steps must satisfy k <= steps <= P = {P}, got {steps}")
    res = lanczos(op, m, seed=seed, return_vectors=True, progress=progress)
    idx = np.arange(m - 1, m - 1 - int(k), -1) if which == "largest" else np.arange(int(k))
    return res.ritz_values[idx], res.ritz_vectors[:, torch.as_tensor(idx.copy())]

