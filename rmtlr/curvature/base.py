"""Symmetric linear operators on flat parameter vectors, and their linear combinations.

A curvature matrix of a network with P parameters is never formed; it is a P×P operator
that only knows how to multiply a vector (``matvec``) or a block of vectors (``matmat``).
:class:`CurvatureOperator` fixes the interface — ``shape``, ``dtype``, ``device``,
``matvec``/``matmat``/``@``/``__call__``, ``T`` and :meth:`~CurvatureOperator.to_scipy`,
following SciPy's :class:`~scipy.sparse.linalg.LinearOperator` — and the algebra
(``a + b``, ``a - b``, ``c * a``), so that the batch-noise matrix of Granziol, Zohren &
Roberts (2022, Eq. 4), ε = H_batch − H_emp, is simply ``batch_op - full_op``.

This module knows nothing of networks; :mod:`rmtlr.curvature.operators` builds on it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse.linalg as spla
import torch

__all__ = ["CurvatureOperator", "LinearCombination", "MatrixOperator", "all_finite",
           "as_operator"]


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of ``t`` is finite.

    A finite sum implies finite entries (NaN and ±Inf propagate through it); only when the
    sum is not finite — a bad entry, or finite entries overflowing — is the exact
    elementwise test run. One reduction instead of ``isfinite(t).all()``'s three
    elementwise passes and a temporary: 40× faster for a VGG-16-sized vector on the CPU,
    and these checks run on every product.

    Parameters
    ----------
    t : torch.Tensor
        Any floating tensor.

    Returns
    -------
    bool
        ``True`` if no entry is NaN or ±Inf.
    """
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


class CurvatureOperator:
    """A symmetric P×P linear operator acting on flat torch vectors.

    Subclasses set ``_P``, ``_dtype``, ``_device`` and implement ``_matvec(v)`` for a
    validated 1-D tensor ``v`` of length P on the operator's device and dtype; they may
    override ``_matmat(V)`` (P×k) when a block of products is cheaper than k single ones.

    ``op @ x`` and ``op(x)`` multiply a vector (shape ``(P,)``) or a block of vectors
    (shape ``(P, k)``), torch or NumPy (a NumPy input gives a NumPy output). The operator
    is symmetric, so ``op.T`` is ``op`` itself.
    """

    _P: int
    _dtype: torch.dtype
    _device: torch.device

    @property
    def shape(self) -> tuple[int, int]:
        """(P, P)."""
        return (self._P, self._P)

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the vectors the operator accepts and returns."""
        return self._dtype

    @property
    def device(self) -> torch.device:
        """Device of the vectors the operator accepts and returns."""
        return self._device

    @property
    def T(self) -> CurvatureOperator:
        """The transpose: the operator itself, since it is symmetric."""
        return self

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._matvec(V[:, i].contiguous()) for i in range(V.shape[1])],
                           dim=1)

    def _check(self, x: torch.Tensor, name: str, ndim: int) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        want = f"({self._P},)" if ndim == 1 else f"({self._P}, k) with k >= 1"
        if x.ndim != ndim or x.shape[0] != self._P or (ndim == 2 and x.shape[1] == 0):
            raise ValueError(f"{name} must have shape {want} to match the operator, "
                             f"got {tuple(x.shape)}")
        if x.dtype != self._dtype:
            raise TypeError(f"{name} must have dtype {self._dtype}, got {x.dtype}")
        if x.device != self._device:
            raise ValueError(f"{name} must be on device {self._device}, got {x.device}")
        if not all_finite(x):
            raise ValueError(f"{name} contains non-finite values (NaN or Inf)")
        return x

    def check_vector(self, v: torch.Tensor, name: str = "v") -> torch.Tensor:
        """Return ``v`` if it is a finite flat tensor of this operator, else raise.

        Parameters
        ----------
        v : torch.Tensor
            Candidate vector.
        name : str, optional
            Argument name for the error message.

        Returns
        -------
        torch.Tensor
            ``v`` itself.

        Raises
        ------
        TypeError
            If ``v`` is not a tensor or has another dtype than the operator.
        ValueError
            If ``v`` has the wrong shape or device, or non-finite entries.
        """
        return self._check(v, name, 1)

    def _from_numpy(self, x: np.ndarray, name: str, ndim: int) -> torch.Tensor:
        if x.ndim != ndim:
            want = f"({self._P},)" if ndim == 1 else f"({self._P}, k)"
            raise ValueError(f"{name} must have shape {want}, got {x.shape}")
        return torch.as_tensor(np.ascontiguousarray(x)).to(self._device, self._dtype)

    def matvec(self, v: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Return A·v.

        Parameters
        ----------
        v : torch.Tensor or numpy.ndarray
            A vector of shape ``(P,)``: a tensor of the operator's dtype and device, or a
            NumPy array (converted, and the result converted back).

        Returns
        -------
        torch.Tensor or numpy.ndarray
            A·v, of the same kind as ``v``.
        """
        if isinstance(v, np.ndarray):
            t = self._from_numpy(v, "v", 1)
            return self._matvec(self._check(t, "v", 1)).detach().cpu().numpy()
        return self._matvec(self._check(v, "v", 1))

    def matmat(self, V: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Return A·V for a block of k vectors.

        Parameters
        ----------
        V : torch.Tensor or numpy.ndarray
            A P×k block (columns are vectors), as for :meth:`matvec`.

        Returns
        -------
        torch.Tensor or numpy.ndarray
            The P×k block A·V, of the same kind as ``V``.
        """
        if isinstance(V, np.ndarray):
            t = self._from_numpy(V, "V", 2)
            return self._matmat(self._check(t, "V", 2)).detach().cpu().numpy()
        return self._matmat(self._check(V, "V", 2))

    def __matmul__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Return ``op @ x``: :meth:`matvec` for a vector, :meth:`matmat` for a P×k block."""
        if getattr(x, "ndim", None) == 2:
            return self.matmat(x)
        return self.matvec(x)

    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Return ``op(x)``, the same as ``op @ x`` (SciPy's convention)."""
        return self @ x

    def to_scipy(self) -> spla.LinearOperator:
        """Return the operator as a SciPy ``LinearOperator`` (NumPy in and out).

        Each product moves the vectors to the operator's device and back, so SciPy's
        ``eigsh`` can serve as an independent reference for the Lanczos routines here.

        Returns
        -------
        scipy.sparse.linalg.LinearOperator
            Symmetric operator with ``matvec``, ``matmat`` and their adjoints.
        """
        np_dtype = torch.empty((), dtype=self._dtype).numpy().dtype

        def mv(x: np.ndarray) -> np.ndarray:
            return self.matvec(np.asarray(x, dtype=np_dtype).reshape(-1))

        def mm(X: np.ndarray) -> np.ndarray:
            return self.matmat(np.asarray(X, dtype=np_dtype))

        return spla.LinearOperator(self.shape, matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm,
                                   dtype=np_dtype)

    def _combine(self, other: object, sign: float) -> LinearCombination:
        if not isinstance(other, CurvatureOperator):
            return NotImplemented
        return LinearCombination([(1.0, self), (sign, other)])

    def __add__(self, other: CurvatureOperator) -> LinearCombination:
        """Return ``a + b``, the sum of two operators of equal shape, dtype and device."""
        return self._combine(other, 1.0)

    def __sub__(self, other: CurvatureOperator) -> LinearCombination:
        """Return ``a - b``, e.g. the batch noise ε = H_batch − H_emp."""
        return self._combine(other, -1.0)

    def __mul__(self, c: float) -> LinearCombination:
        """Return ``c * a`` for a finite real scalar c."""
        if isinstance(c, (int, float)) and not isinstance(c, bool):
            return LinearCombination([(float(c), self)])
        return NotImplemented

    __rmul__ = __mul__

    def __neg__(self) -> LinearCombination:
        """Return ``-a``."""
        return LinearCombination([(-1.0, self)])

    def __repr__(self) -> str:
        """Class name, size, dtype and device."""
        return f"{type(self).__name__}(P={self._P}, dtype={self._dtype}, device={self._device})"


class LinearCombination(CurvatureOperator):
    """Σ_k c_k A_k for operators of equal shape, dtype and device (e.g. ε = H_batch − H_emp).

    Parameters
    ----------
    terms : iterable of (float, CurvatureOperator)
        Coefficients and operators; nested combinations are flattened.

    Raises
    ------
    ValueError
        If there are no terms, a coefficient is not finite, or the operators differ in
        shape, dtype or device.
    """

    def __init__(self, terms: Iterable[tuple[float, CurvatureOperator]]):
        flat: list[tuple[float, CurvatureOperator]] = []
        for c, op in terms:
            if not np.isfinite(c):
                raise ValueError(f"coefficients must be finite, got {c!r}")
            if isinstance(op, LinearCombination):
                flat.extend((c * c2, op2) for c2, op2 in op.terms)
            else:
                flat.append((float(c), op))
        if not flat:
            raise ValueError("terms must contain at least one operator")
        first = flat[0][1]
        for _, op in flat[1:]:
            if (op.shape, op.dtype, op.device) != (first.shape, first.dtype, first.device):
                raise ValueError(
                    "operators must share shape, dtype and device to be combined; got "
                    f"{first.shape}/{first.dtype}/{first.device} and "
                    f"{op.shape}/{op.dtype}/{op.device}")
        self.terms = flat
        self._P, self._dtype, self._device = first.shape[0], first.dtype, first.device

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._apply(v, single=True)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self._apply(V, single=False)

    def _apply(self, x: torch.Tensor, single: bool) -> torch.Tensor:
        out = None
        for c, op in self.terms:
            term = op._matvec(x) if single else op._matmat(x)
            out = c * term if out is None else out.add_(term, alpha=c)
        return out


class MatrixOperator(CurvatureOperator):
    """A dense symmetric matrix (torch or NumPy) as an operator: tests and benchmarks.

    Parameters
    ----------
    A : torch.Tensor or numpy.ndarray
        A P×P symmetric matrix (checked to relative 1e-6).
    dtype : torch.dtype or None, optional
        Dtype of the operator (default: A's; integer matrices become the default dtype).
    device : torch.device or str or None, optional
        Device of the operator (default: A's).

    Raises
    ------
    ValueError
        If A is not square, empty, non-finite or not symmetric.

    Examples
    --------
    >>> import torch
    >>> A = MatrixOperator(torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64)))
    >>> A @ torch.tensor([1.0, 1.0], dtype=torch.float64)
    tensor([3., 1.], dtype=torch.float64)
    """

    def __init__(self, A: torch.Tensor | np.ndarray, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None):
        A = torch.as_tensor(A)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"A must be a non-empty square matrix, got shape {tuple(A.shape)}")
        if not A.is_floating_point():
            A = A.to(torch.get_default_dtype())
        A = A.to(device=device if device is not None else A.device, dtype=dtype or A.dtype)
        if not all_finite(A):
            raise ValueError("A contains non-finite values")
        if not torch.allclose(A, A.T, rtol=1e-6, atol=1e-6 * float(A.abs().max())):
            raise ValueError("A must be symmetric")
        self.A = A
        self._P, self._dtype, self._device = A.shape[0], A.dtype, A.device

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.A @ v

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self.A @ V


def as_operator(op: CurvatureOperator | torch.Tensor | np.ndarray) -> CurvatureOperator:
    """Return ``op`` as a :class:`CurvatureOperator` (a dense matrix is wrapped).

    Parameters
    ----------
    op : CurvatureOperator or torch.Tensor or numpy.ndarray
        An operator, or a dense symmetric matrix.

    Returns
    -------
    CurvatureOperator
        ``op`` itself, or a :class:`MatrixOperator` around it.

    Raises
    ------
    TypeError
        If ``op`` is neither.
    """
    if isinstance(op, CurvatureOperator):
        return op
    if isinstance(op, (torch.Tensor, np.ndarray)):
        return MatrixOperator(op)
    raise TypeError("op must be a CurvatureOperator or a dense symmetric matrix, "
                    f"got {type(op).__name__}")
