"""Argument checks shared by the whole library (NumPy only).

Every public function of :mod:`rmtlr` checks its input with these helpers, so that bad
input fails the same way everywhere: a :class:`TypeError` for a value of the wrong kind
(a string, a bool, ``None``, a complex number, or a float where an integer is meant, as
Python's own ``range(2.5)`` does) and a :class:`ValueError` for a value of the right
kind outside its range (NaN, ∞, a negative size, a fractional parameter count). Both
name the argument and the allowed range.

Examples
--------
>>> positive("B (batch size)", 32)
array(32.)
>>> positive("B (batch size)", "32")
Traceback (most recent call last):
    ...
TypeError: B (batch size) must be a real number or an array of real numbers, got '32'
>>> positive_int("num_classes", 10.7)
Traceback (most recent call last):
    ...
TypeError: num_classes must be an integer, got 10.7
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "finite",
    "nonnegative",
    "positive",
    "positive_int",
    "positive_scalar",
    "real",
    "scalar_or_array",
    "whole_number",
]


def _is_real_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def real(name: str, value: ArrayLike) -> np.ndarray:
    """Convert a real number or array of real numbers to a float array.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : array_like
        Real number(s): Python or NumPy ints and floats, or objects such as
        :class:`fractions.Fraction` that are :class:`numbers.Real`.

    Returns
    -------
    numpy.ndarray
        ``value`` as a float64 array (NaN and ∞ are kept; the other helpers reject them).

    Raises
    ------
    TypeError
        If ``value`` is or contains a string, bytes, a bool, ``None``, a complex number or
        any other non-real object.

    Examples
    --------
    >>> from fractions import Fraction
    >>> real("x", [1, Fraction(1, 2)])
    array([1. , 0.5])
    """
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        raise TypeError(
            f"{name} must be a real number or an array of real numbers, got {value!r}"
        )
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind == "O":
        if not all(_is_real_number(v) for v in arr.ravel()):
            raise TypeError(
                f"{name} must be a real number or an array of real numbers, got {value!r}"
            )
        return arr.astype(float)
    if kind not in "iuf":
        raise TypeError(
            f"{name} must be a real number or an array of real numbers, got {value!r}"
        )
    return arr.astype(float, copy=False)


def finite(name: str, value: ArrayLike) -> np.ndarray:
    """Real, finite number(s) of any sign.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : array_like
        The value to check.

    Returns
    -------
    numpy.ndarray
        ``value`` as a float64 array.

    Raises
    ------
    TypeError
        If ``value`` is not real (see :func:`real`).
    ValueError
        If any entry is NaN or infinite.
    """
    arr = real(name, value)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


def nonnegative(name: str, value: ArrayLike) -> np.ndarray:
    """Real, finite number(s) ≥ 0.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : array_like
        The value to check.

    Returns
    -------
    numpy.ndarray
        ``value`` as a float64 array.

    Raises
    ------
    TypeError
        If ``value`` is not real (see :func:`real`).
    ValueError
        If any entry is NaN, infinite or negative.
    """
    arr = real(name, value)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return arr


def positive(name: str, value: ArrayLike, *, allow_inf: bool = False) -> np.ndarray:
    """Real number(s) > 0, finite unless ``allow_inf``.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : array_like
        The value to check.
    allow_inf : bool
        Accept ``+inf`` (e.g. N = ∞ for fresh samples every step).

    Returns
    -------
    numpy.ndarray
        ``value`` as a float64 array.

    Raises
    ------
    TypeError
        If ``value`` is not real (see :func:`real`).
    ValueError
        If any entry is NaN or ≤ 0, or infinite when ``allow_inf`` is false.
    """
    arr = real(name, value)
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} must be a positive number, got NaN")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if not allow_inf and np.any(np.isinf(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


def whole_number(name: str, value: ArrayLike, *, allow_inf: bool = False) -> np.ndarray:
    """Check count(s) used inside formulas: whole numbers ≥ 1, of int or float type.

    Parameter counts P and sample counts N enter the laws as real numbers (``1.5e7`` is
    a fine way to write P), but a fractional count is a mistake, not a limit.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : array_like
        The value to check.
    allow_inf : bool
        Accept ``+inf`` (N = ∞: fresh samples every step).

    Returns
    -------
    numpy.ndarray
        ``value`` as a float64 array.

    Raises
    ------
    TypeError
        If ``value`` is not real (see :func:`real`).
    ValueError
        If any entry is NaN, < 1, not a whole number, or infinite without ``allow_inf``.

    Examples
    --------
    >>> whole_number("P (number of parameters)", 1.5e7)
    array(15000000.)
    >>> whole_number("P (number of parameters)", 0.5)
    Traceback (most recent call last):
        ...
    ValueError: P (number of parameters) must be a whole number >= 1, got 0.5
    """
    arr = positive(name, value, allow_inf=allow_inf)
    fin = arr[np.isfinite(arr)]
    if np.any(fin < 1) or np.any(fin != np.round(fin)):
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return arr


def positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Check an integer (Python or NumPy, not bool) ≥ ``minimum``; return a Python int.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The value to check.
    minimum : int
        Smallest allowed value.

    Returns
    -------
    int
        ``value`` as a Python int.

    Raises
    ------
    TypeError
        If ``value`` is not an integer (a float such as ``10.0`` or ``10.7``, a string or
        a bool).
    ValueError
        If ``value`` < ``minimum``.
    """
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_scalar(name: str, value: object) -> float:
    """Check a single real number, finite and > 0; return it as a Python float.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The value to check.

    Returns
    -------
    float
        ``value`` as a float.

    Raises
    ------
    TypeError
        If ``value`` is not a single real number.
    ValueError
        If ``value`` is NaN, infinite or ≤ 0.
    """
    arr = real(name, value)
    if arr.ndim != 0:
        raise TypeError(f"{name} must be a single number, got an array of shape {arr.shape}")
    v = float(arr)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def scalar_or_array(x: np.ndarray) -> float | complex | np.ndarray:
    """Return a Python scalar for a 0-d array and the array itself otherwise.

    Functions of :mod:`rmtlr.rmt` and :mod:`rmtlr.scaling` accept scalars or arrays and
    return the same kind.

    Parameters
    ----------
    x : numpy.ndarray
        A real or complex result.

    Returns
    -------
    float or complex or numpy.ndarray
        ``x.item()`` if ``x`` is 0-d, else ``x``.

    Examples
    --------
    >>> scalar_or_array(np.asarray(2.0)), scalar_or_array(np.ones(2))
    (2.0, array([1., 1.]))
    """
    return np.asarray(x).item() if np.ndim(x) == 0 else x
