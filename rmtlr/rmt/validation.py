"""Argument checks for the whole library: one module, one convention (NumPy only).

Every public function of :mod:`rmtlr` that takes numbers checks them here (this module
sits at the bottom of the package and imports neither torch nor any other part of
rmtlr), so that bad input fails the same way everywhere, before any work starts, with a
message that names the argument and the allowed values:

- :class:`TypeError` when the value is not a real number at all: a string (``"32"``), a
  bool, ``None``, a complex number, or a sequence where a single number is meant.
- :class:`ValueError` when it is a real number that is not allowed: NaN, ∞, a number
  outside its range, or a fraction where a whole number is meant (``batch_size=2.5``,
  ``P=0.5``).

Whole numbers may come as floats (``16.0``, ``1e3``): configurations round-trip through
JSON, and ``1.5e7`` is a fine way to write a parameter count. Device arguments are
checked by :func:`rmtlr.profiles.resolve_device`, the one place that knows about torch.

Examples
--------
>>> positive("B (batch size)", 32)
array(32.)
>>> positive("B (batch size)", "32")
Traceback (most recent call last):
    ...
TypeError: B (batch size) must be a real number or an array of real numbers, got '32'
>>> integer("num_classes", 10.7)
Traceback (most recent call last):
    ...
ValueError: num_classes must be an integer >= 1, got 10.7
>>> integer("num_classes", 10.0)
10
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "MAX_SEED",
    "finite",
    "finite_scalar",
    "integer",
    "nonnegative",
    "positive",
    "positive_scalar",
    "random_seed",
    "real",
    "scalar_or_array",
    "whole_number",
]

#: Largest seed accepted: what ``torch.manual_seed`` and NumPy's generators both take.
MAX_SEED = 2**63 - 1


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


def integer(name: str, value: object, *, lo: int = 1, hi: int | None = None) -> int:
    """Check a count, size, index or seed: a whole number in ``[lo, hi]``; return an int.

    Python and NumPy integers are accepted, and so are floats with a whole value
    (``16.0``, ``1e3``): configurations round-trip through JSON, where a count may come
    back as a float. A fraction is a mistake, not a value to round.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The value to check.
    lo : int
        Smallest allowed value.
    hi : int or None, optional
        Largest allowed value; ``None`` for no upper bound.

    Returns
    -------
    int
        ``value`` as a Python int.

    Raises
    ------
    TypeError
        If ``value`` is not a single real number: a string, a bool, ``None``, a complex
        number, a sequence or an array.
    ValueError
        If ``value`` is NaN, infinite, fractional (``2.5``) or outside ``[lo, hi]``.

    Examples
    --------
    >>> integer("batch_size", 16.0)
    16
    >>> integer("num_steps", 2.5)
    Traceback (most recent call last):
        ...
    ValueError: num_steps must be an integer >= 1, got 2.5
    >>> integer("num_steps", "5")
    Traceback (most recent call last):
        ...
    TypeError: num_steps must be an integer >= 1, got '5' (str)
    """
    top = "2**63 - 1" if hi == MAX_SEED else hi
    allowed = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {top}]"
    if not _is_real_number(value):
        raise TypeError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__})")
    if isinstance(value, numbers.Integral):
        whole = int(value)
    elif math.isfinite(value) and value == math.floor(value):
        whole = math.floor(value)
    else:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if whole < lo or (hi is not None and whole > hi):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return whole


def random_seed(name: str, value: object, *, allow_none: bool = False) -> int | None:
    """Check a random seed: a whole number in [0, :data:`MAX_SEED`] (or ``None``).

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The seed.
    allow_none : bool
        Accept ``None`` (meaning: a fresh, unseeded generator) and return it.

    Returns
    -------
    int or None
        The seed as a Python int, or ``None``.

    Raises
    ------
    TypeError
        If ``value`` is not a single real number (a generator object or a list included),
        or is ``None`` without ``allow_none``.
    ValueError
        If ``value`` is negative, fractional or above :data:`MAX_SEED`.

    Examples
    --------
    >>> random_seed("seed", 7.0), random_seed("seed", None, allow_none=True)
    (7, None)
    """
    if value is None and allow_none:
        return None
    return integer(name, value, lo=0, hi=MAX_SEED)


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


def finite_scalar(name: str, value: object, *, lo: float = -math.inf, hi: float = math.inf,
                  lo_open: bool = False, hi_open: bool = False) -> float:
    """Check a single finite real number in an interval; return it as a Python float.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The value to check.
    lo : float
        The interval's lower end (default: none).
    hi : float
        The interval's upper end (default: none).
    lo_open : bool
        Exclude ``lo`` itself.
    hi_open : bool
        Exclude ``hi`` itself.

    Returns
    -------
    float
        ``value`` as a Python float.

    Raises
    ------
    TypeError
        If ``value`` is not a single real number (see :func:`real`).
    ValueError
        If ``value`` is NaN, infinite or outside the interval.

    Examples
    --------
    >>> finite_scalar("momentum", 0.9, lo=0, hi=1, hi_open=True)
    0.9
    >>> finite_scalar("momentum", 1.5, lo=0, hi=1, hi_open=True)
    Traceback (most recent call last):
        ...
    ValueError: momentum must be a finite number in [0, 1), got 1.5
    """
    arr = real(name, value)
    if arr.ndim != 0:
        raise TypeError(f"{name} must be a single number, got an array of shape {arr.shape}")
    v = float(arr)
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        left = "(" if lo_open or lo == -math.inf else "["
        right = ")" if hi_open or hi == math.inf else "]"
        interval = f"{left}{lo:g}, {hi:g}{right}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
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
