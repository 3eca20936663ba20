"""Extreme eigenpairs of a symmetric operator by block Lanczos, with residuals.

Single-vector Lanczos cannot see multiplicity: the Krylov space of one start vector q
meets each eigenspace in one direction only (the projection of q on it), so an eigenvalue
of multiplicity 4 appears as one Ritz value, and the "top three" it returns are the top
three *distinct* eigenvalues. Block Lanczos (Golub & Underwood 1977; Golub & Van Loan
2013, Sec. 10.3.6) starts from b random vectors; its Krylov space meets every eigenspace in
min(b, multiplicity) directions, so with block size b ≥ k the k largest eigenvalues are
found with their multiplicities.

One block step: W = A Q_j − Q_j A_j − Q_{j−1} B_{j−1}ᵀ with A_j = Q_jᵀ A Q_j, fully
re-orthogonalised against the whole basis (classical block Gram–Schmidt, a second pass
when a column lost more than 1 − 1/√2 of its norm), then W = Q_{j+1} B_j by a QR
decomposition followed by an SVD of its small triangular factor. A direction with a
singular value below 100·ε·‖A‖ (the block has found an invariant subspace) is replaced by a
random vector orthogonal to the basis, with a zero row in B_j, as single-vector Lanczos
restarts. T, block tridiagonal with blocks A_j and B_j, is QᵀAQ; its extreme eigenpairs
(θ, y) give the Ritz pairs (θ, Qy).

Precision as in :func:`rmtlr.curvature.lanczos`: the basis and the recurrence run in
float32 or higher; the products of a bfloat16 or float16 operator are cast up.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from rmtlr.curvature.base import CurvatureOperator, as_operator
from rmtlr.curvature.lanczos import working_dtype
from rmtlr.progress import progress_bar
from rmtlr.rmt.validation import finite_scalar, integer, random_seed

__all__ = ["EigenResult", "top_eigenpairs"]

_DGKS = 1 / 2 ** 0.5


@dataclass(frozen=True, eq=False)
class EigenResult:
    """Output of :func:`top_eigenpairs`: Ritz pairs with their residuals.

    Attributes
    ----------
    values : numpy.ndarray
        The k Ritz values θ_i (float64): largest first for ``which="largest"``, smallest
        first for ``"smallest"``.
    vectors : torch.Tensor
        The P×k unit Ritz vectors v_i, in ``dtype``, on the operator's device.
    residual_norms : numpy.ndarray
        ‖A v_i − θ_i v_i‖, computed with one more product per pair. By the Bauer–Fike
        bound for symmetric matrices an eigenvalue of A lies within it of θ_i.
    converged : numpy.ndarray
        Per pair, whether ``residual_norms <= tol * norm_estimate``.
    tol : float
        The relative tolerance used for ``converged``.
    norm_estimate : float
        max |θ| over all Ritz values, a lower bound on ‖A‖₂ that the tolerance is
        relative to.
    num_steps : int
        Dimension of the Krylov basis built (operator products before the residuals).
    block_size : int
        b, the number of vectors per block step.
    num_matvecs : int
        All operator products, residuals included (num_steps + k).
    deflations : int
        Directions replaced by random vectors after the block found an invariant subspace.
    matvec_seconds : float
        Time inside the operator's products.
    seconds : float
        Wall-clock time of the whole call.
    dtype : torch.dtype
        Working precision of the basis and of ``vectors``.
    """

    values: np.ndarray
    vectors: torch.Tensor
    residual_norms: np.ndarray
    converged: np.ndarray
    tol: float
    norm_estimate: float
    num_steps: int
    block_size: int
    num_matvecs: int
    deflations: int
    matvec_seconds: float
    seconds: float
    dtype: torch.dtype


def _products(op: CurvatureOperator, X: torch.Tensor) -> torch.Tensor:
    """A·X for a P×b block in the working dtype (cast down to the operator's and back)."""
    if X.dtype == op.dtype:
        return op.matmat(X)
    return op.matmat(X.to(op.dtype)).to(X.dtype)


def _project_out(W: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """W minus its projection on the rows of Q, by classical Gram–Schmidt, twice if needed."""
    if Q.shape[0] == 0:
        return W
    before = torch.linalg.vector_norm(W, dim=0)
    W = W - Q.T @ (Q @ W)
    if bool((torch.linalg.vector_norm(W, dim=0) < _DGKS * before).any()):
        W = W - Q.T @ (Q @ W)
    return W


def _block_lanczos(op: CurvatureOperator, n: int, b: int, gen: torch.Generator,
                   progress: bool | None) -> tuple[torch.Tensor, np.ndarray, int, float]:
    """Basis rows Q (n×P), T = QᵀAQ (n×n, float64), deflation count and product time."""
    P, device = op.shape[0], op.device
    wd = working_dtype(op.dtype)

    def random_block(k: int) -> torch.Tensor:
        cols = [torch.randn(P, generator=gen, dtype=torch.float64) for _ in range(k)]
        return torch.stack(cols, dim=1).to(device, wd)

    Q = torch.empty((n, P), dtype=wd, device=device)
    Q[:b] = torch.linalg.qr(random_block(b))[0].T
    T = np.zeros((n, n))
    deflations, t_mv, scale = 0, 0.0, 0.0
    start, size, prev = 0, b, 0  # current block: rows start:start+size; previous: prev:start
    bar = progress_bar(total=-(-n // b), desc="block Lanczos", progress=progress)
    while True:
        end = start + size
        block = Q[start:end]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        W = _products(op, block.T.contiguous())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_mv += time.perf_counter() - t0
        bar.update(1)
        A_j = (block @ W).double().cpu().numpy()
        A_j = (A_j + A_j.T) / 2
        T[start:end, start:end] = A_j
        scale = max(scale, float(np.abs(np.linalg.eigvalsh(A_j)).max()))
        if end >= n:
            break
        # Three-term recurrence first, so the full pass only removes rounding-level drift.
        W = W - block.T @ torch.as_tensor(A_j, dtype=wd, device=device)
        if start > 0:
            W = W - Q[prev:start].T @ torch.as_tensor(T[prev:start, start:end], dtype=wd,
                                                      device=device)
        W = _project_out(W, Q[:end])
        Qw, R = torch.linalg.qr(W)
        U, S, Vh = np.linalg.svd(R.double().cpu().numpy())
        scale = max(scale, float(S[0]))
        nxt = min(b, n - end)
        # W = (Qw U) S Vh: keep the nxt strongest directions (all b but at a final partial
        # block); T stays QᵀAQ, since the next block's coupling is exactly S Vh there.
        B = S[:nxt, None] * Vh[:nxt]
        new = Qw @ torch.as_tensor(U[:, :nxt], dtype=wd, device=device)
        weak = S[:nxt] <= 100 * torch.finfo(wd).eps * max(scale, 1e-300)
        if weak.any():
            # An invariant subspace: continue in a random direction orthogonal to the basis
            # and to every direction of W with weight (its coupling to the basis is then
            # zero, so T stays QᵀAQ).
            deflations += int(weak.sum())
            B[weak] = 0.0
            dropped = Qw @ torch.as_tensor(U[:, nxt:], dtype=wd, device=device)
            for i in np.flatnonzero(weak):
                kept = torch.as_tensor(np.flatnonzero(~weak), device=device)
                avoid = torch.cat([Q[:end], new[:, kept].T, dropped.T])
                if avoid.shape[0] >= P:  # no room left beside the dropped directions
                    avoid = avoid[: avoid.shape[0] - dropped.shape[1]]
                r = _project_out(_project_out(random_block(1), avoid), avoid)
                new[:, i] = (r / torch.linalg.vector_norm(r))[:, 0]
                weak[i] = False
        Q[end:end + nxt] = new.T
        T[end:end + nxt, start:end] = B
        T[start:end, end:end + nxt] = B.T
        prev, start, size = start, end, nxt
    bar.close()
    return Q, T, deflations, t_mv


def top_eigenpairs(op: CurvatureOperator | torch.Tensor | np.ndarray, k: int = 1, *,
                   num_steps: int | None = None, block_size: int | None = None,
                   which: str = "largest", tol: float | None = None, seed: int | None = None,
                   progress: bool | None = None) -> EigenResult:
    """Compute the k largest (or smallest) eigenvalues of ``op`` and their eigenvectors.

    Block Lanczos with full re-orthogonalisation (see the module docstring): with block
    size b ≥ k (the default b = k), eigenvalues of any multiplicity are returned as often
    as they occur among the top k. Extreme Ritz pairs converge first (Kaniel–Paige theory,
    Golub & Van Loan 2013, Sec. 10.1.5); each pair comes with its residual
    ‖A v − θ v‖, and is flagged converged when that is at most ``tol``·max|θ|.

    Parameters
    ----------
    op : CurvatureOperator or torch.Tensor or numpy.ndarray
        The operator, or a dense symmetric matrix.
    k : int, optional
        How many eigenpairs, 1 ≤ k ≤ P.
    num_steps : int, optional
        Dimension of the Krylov basis, i.e. operator products before the k residual
        products (⌈num_steps/b⌉ block steps); max(k, b) ≤ num_steps ≤ P. Default
        min(P, max(2k + 20, 40, b)).
    block_size : int, optional
        b, vectors per block step (default k). An eigenvalue is found at most b times.
    which : {"largest", "smallest"}, optional
        The end of the spectrum.
    tol : float, optional
        Relative residual tolerance for ``converged`` (≥ 0); default √ε of the operator's
        dtype (1.5e-8 in float64, 3.5e-4 in float32, 0.09 in bfloat16, whose products are
        only accurate to ~0.5%).
    seed : int, optional
        Seed (≥ 0) of the random start block, drawn on the CPU column by column (its first
        column is the start vector of ``lanczos(op, ..., seed=seed)``); None means 0.
    progress : bool, optional
        A tqdm bar over block steps; None (default) shows it unless ``TQDM_DISABLE`` is set
        or pytest runs.

    Returns
    -------
    EigenResult
        Values, vectors, residual norms, convergence flags and the cost.

    Raises
    ------
    TypeError
        If ``op`` is not an operator or matrix, or a count or ``seed`` not a number.
    ValueError
        If a count or ``seed`` is not a whole number in its range, ``which`` is unknown or ``tol`` is negative.

    Warns
    -----
    RuntimeWarning
        When a converged cluster of b or more equal Ritz values is followed by further
        pairs among the k: the eigenvalue may have a multiplicity above b, and then the
        pairs after the cluster are not the next eigenvalues. Pass a larger ``block_size``.

    Examples
    --------
    The eigenvalue 3 has multiplicity 2; block size k = 2 finds it twice.

    >>> import torch
    >>> A = torch.diag(torch.tensor([3.0, 3.0, 2.0, 1.0, 0.5, 0.1], dtype=torch.float64))
    >>> res = top_eigenpairs(A, k=2, num_steps=6, seed=0)
    >>> res.values.round(8)
    array([3., 3.])
    >>> bool(res.converged.all()), res.block_size, res.num_matvecs
    (True, 2, 8)
    """
    t_start = time.perf_counter()
    op = as_operator(op)
    P = op.shape[0]
    k = integer("k", k, lo=1, hi=P)
    if which not in ("largest", "smallest"):
        raise ValueError(f"which must be 'largest' or 'smallest', got {which!r}")
    b = k if block_size is None else integer("block_size", block_size, lo=1, hi=P)
    if num_steps is None:
        n = min(P, max(2 * k + 20, 40, b))
    else:
        n = integer("num_steps", num_steps, lo=max(k, b), hi=P)
    seed = random_seed("seed", seed, allow_none=True)
    if tol is None:
        tol = float(np.sqrt(torch.finfo(op.dtype).eps))
    else:
        tol = finite_scalar("tol", tol, lo=0)
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    Q, T, deflations, t_mv = _block_lanczos(op, n, b, gen, progress)
    theta, Y = np.linalg.eigh(T)
    idx = np.arange(n - 1, n - 1 - k, -1) if which == "largest" else np.arange(k)
    values = theta[idx]
    V = Q.T @ torch.as_tensor(Y[:, idx], dtype=Q.dtype, device=Q.device)
    t0 = time.perf_counter()
    AV = _products(op, V)
    if op.device.type == "cuda":
        torch.cuda.synchronize(op.device)
    t_mv += time.perf_counter() - t0
    R = AV - V * torch.as_tensor(values, dtype=Q.dtype, device=Q.device)
    residuals = torch.linalg.vector_norm(R.double(), dim=0).cpu().numpy()
    scale = float(np.abs(theta).max())
    converged = residuals <= tol * scale
    _warn_hidden_multiplicity(values, converged, tol * scale, b)
    return EigenResult(values, V, residuals, converged, float(tol), scale, n, b, n + k,
                       deflations, t_mv, time.perf_counter() - t_start, Q.dtype)


def _warn_hidden_multiplicity(values: np.ndarray, converged: np.ndarray, atol: float,
                              b: int) -> None:
    # Clusters of consecutive values equal within the residual tolerance (two converged
    # Ritz values of one eigenvalue differ by at most twice it).
    start = 0
    for i in range(1, len(values) + 1):
        if i < len(values) and abs(values[i] - values[i - 1]) <= 2 * atol:
            continue
        if i - start >= b and converged[start:i].all() and i < len(values):
            warnings.warn(
                f"top_eigenpairs: the eigenvalue {values[start]:.6g} was found {i - start} "
                f"times, as often as the block size b = {b} allows; its multiplicity may be "
                "higher, in which case the values after it are not the next eigenvalues. "
                "Pass block_size >= k.", RuntimeWarning, stacklevel=3)
        start = i
