"""Lanczos with full re-orthogonalisation on flat vectors (Golub & Van Loan, Sec. 10.1).

m steps from a unit start vector q₁ build an orthonormal basis Q = [q₁ … q_m] of the
Krylov space and the tridiagonal T = QᵀAQ (α on the diagonal, β off it). The eigenvalues
θ_k of T (Ritz values) approximate the extreme eigenvalues of A; the squared first
components τ_k = (e₁ᵀy_k)² of its eigenvectors (Ritz weights) are the Gauss-quadrature
weights of the spectral measure of A seen from q₁ (Golub & Meurant 2010), the basis of
stochastic Lanczos quadrature. This is how Granziol et al. (2022, Sec. 4 and App.) measure
network spectra: m = 100, one random start, full re-orthogonalisation.

Precision: the basis, the recurrence and the re-orthogonalisation run on the operator's
device in float32 or higher — the operator's dtype if that is float32 or float64, float32
for a bfloat16 or float16 operator, whose products are cast up (in bfloat16 the basis itself
would lose orthogonality at 1e-2 and the top Ritz value would be off by ~10%); T is
accumulated and diagonalised in float64. The accuracy is then that of the products. Each
new vector, after the three-term recurrence, is re-orthogonalised against the
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

from rmtlr.curvature.base import CurvatureOperator, as_operator
from rmtlr.progress import progress_bar
from rmtlr.rmt.validation import finite_scalar, integer, random_seed

__all__ = ["LanczosResult", "lanczos", "working_dtype"]


@dataclass(frozen=True, eq=False)
class LanczosResult:
    """Output of :func:`lanczos`.

    Attributes
    ----------
    ritz_values : numpy.ndarray
        θ_k, ascending (float64, length m).
    ritz_weights : numpy.ndarray
        τ_k = (e₁ᵀ y_k)², summing to 1 (float64, length m).
    alpha : numpy.ndarray
        Diagonal of the tridiagonal T (length m).
    beta : numpy.ndarray
        Off-diagonal of T (length m − 1).
    ritz_vectors : torch.Tensor or None
        P×m Ritz vectors Q y_k (columns in the order of ``ritz_values``), in ``dtype``;
        None unless requested.
    restarts : int
        How many times β ≈ 0 (an invariant subspace) forced a restart.
    matvec_seconds : float
        Time inside the operator's products.
    total_seconds : float
        Time of the whole run.
    dtype : torch.dtype
        Working precision of the basis and recurrence (float32 or higher).
    """

    ritz_values: np.ndarray
    ritz_weights: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    ritz_vectors: torch.Tensor | None
    restarts: int
    matvec_seconds: float
    total_seconds: float
    dtype: torch.dtype


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the precision Lanczos runs in for an operator of ``dtype``: float32 or higher.

    Parameters
    ----------
    dtype : torch.dtype
        The operator's dtype.

    Returns
    -------
    torch.dtype
        ``dtype`` if it is float32 or wider, else float32.

    Examples
    --------
    >>> import torch
    >>> working_dtype(torch.bfloat16), working_dtype(torch.float64)
    (torch.float32, torch.float64)
    """
    return torch.promote_types(dtype, torch.float32)


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


def lanczos(op: CurvatureOperator | torch.Tensor | np.ndarray, num_steps: int, *,
            v0: torch.Tensor | None = None, seed: int | None = None,
            return_vectors: bool = False, breakdown_tol: float | None = None,
            progress: bool | None = None) -> LanczosResult:
    r"""Run m = ``num_steps`` Lanczos steps on a symmetric operator.

    Recurrence (Golub & Van Loan 2013, Alg. 10.1.1): β_j q_{j+1} = A q_j − α_j q_j −
    β_{j−1} q_{j−1}, α_j = q_jᵀ A q_j, with every new vector fully re-orthogonalised
    against q_1 … q_j (at most twice, by the DGKS criterion). The basis and the recurrence
    run in float32 or higher (:func:`working_dtype`), whatever the operator's dtype.

    Parameters
    ----------
    op : CurvatureOperator or torch.Tensor or numpy.ndarray
        The operator, or a dense symmetric matrix.
    num_steps : int
        m, the number of steps (operator products), 1 ≤ m ≤ P.
    v0 : torch.Tensor, optional
        Start vector of length P (normalised here); default a Gaussian vector drawn from
        ``seed``.
    seed : int, optional
        Seed (≥ 0) of the start vector and of restart vectors, drawn on the CPU, so the
        same seed gives the same run on every device and on every rank of a distributed
        job. None means 0.
    return_vectors : bool, optional
        Also return the P×m Ritz vectors.
    breakdown_tol : float, optional
        Restart when β_j < breakdown_tol·max(|α|, |β|); default 100·machine epsilon of
        the working precision.
    progress : bool, optional
        A tqdm bar over steps; None (default) shows it unless ``TQDM_DISABLE`` is set or
        pytest runs.

    Returns
    -------
    LanczosResult
        Ritz values and weights, the tridiagonal, timings and the working dtype.

    Raises
    ------
    TypeError
        If ``op`` is not an operator or matrix, or ``num_steps``/``seed`` not numbers.
    ValueError
        If ``num_steps`` is not a whole number in [1, P] or ``seed`` not one in
        [0, 2**63 − 1], ``v0`` is zero or invalid, or
        ``breakdown_tol`` is negative.

    Examples
    --------
    >>> import torch
    >>> A = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64))
    >>> res = lanczos(A, 4, seed=0)
    >>> res.ritz_values.round(6)
    array([1., 2., 3., 4.])
    >>> round(float(res.ritz_weights.sum()), 12)  # Gauss-quadrature weights sum to 1
    1.0
    """
    t_start = time.perf_counter()
    op = as_operator(op)
    P = op.shape[0]
    m = integer("num_steps", num_steps, lo=1, hi=P)
    seed = random_seed("seed", seed, allow_none=True)
    dtype, device = working_dtype(op.dtype), op.device
    eps = torch.finfo(dtype).eps
    tol = (100 * eps if breakdown_tol is None
           else finite_scalar("breakdown_tol", breakdown_tol, lo=0))
    gen = torch.Generator().manual_seed(0 if seed is None else seed)

    def random_vector() -> torch.Tensor:
        return torch.randn(P, generator=gen, dtype=torch.float64).to(device, dtype)

    q = random_vector() if v0 is None else op.check_vector(v0, "v0").to(dtype, copy=True)
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
    cast = op.dtype != dtype
    steps = progress_bar(range(m), desc="Lanczos", progress=progress)
    for j in steps:
        _sync(device)
        t0 = time.perf_counter()
        w = op.matvec(Q[j].to(op.dtype) if cast else Q[j])
        if cast:
            w = w.to(dtype)
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
                         time.perf_counter() - t_start, dtype)
