"""Argument checks shared by the curvature algorithms: integer counts and seeds.

A count given as ``2.5`` or ``"5"`` is refused with a message that names the argument and
the allowed range, instead of being truncated or failing deep inside a loop.
"""

from __future__ import annotations

import numbers

__all__ = ["check_int", "check_seed"]


def check_int(name: str, value: object, *, lo: int, hi: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[lo, hi]``.

    Parameters
    ----------
    name : str
        Argument name, used in the error message.
    value : object
        The value to check; Python and NumPy integers are accepted, ``bool``, floats
        (even integral ones) and strings are not.
    lo : int
        Smallest allowed value.
    hi : int or None, optional
        Largest allowed value; ``None`` for no upper bound.

    Returns
    -------
    int
        ``value`` as a Python integer.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If ``value`` is outside ``[lo, hi]``.

    Examples
    --------
    >>> check_int("num_steps", 5, lo=1, hi=10)
    5
    >>> check_int("num_steps", 2.5, lo=1)
    Traceback (most recent call last):
    ...
    TypeError: num_steps must be an integer, got 2.5 (float)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f"{lo} <= {name}" + (f" <= {hi}" if hi is not None else "")
        raise ValueError(f"{name} must satisfy {bound}, got {value}")
    return value


def check_seed(seed: object) -> int | None:
    """Return ``seed`` unchanged if it is ``None`` or an integer in ``[0, 2**63)``.

    Parameters
    ----------
    seed : object
        The seed to check.

    Returns
    -------
    int or None
        The seed as a Python integer, or ``None``.

    Raises
    ------
    TypeError
        If ``seed`` is neither ``None`` nor an integer.
    ValueError
        If ``seed`` is negative or does not fit a 64-bit seed.
    """
    if seed is None:
        return None
    return check_int("seed", seed, lo=0, hi=2**63 - 1)
