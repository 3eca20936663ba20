"""Checks of user arguments shared by the training modules: counts, seeds and devices.

Each check returns the value in its one canonical type (a Python ``int`` for counts and
seeds, so that configurations are strict JSON and equal settings have equal run keys) or
raises a ``ValueError`` that names the argument and the allowed range, before any work
starts, instead of a crash deep inside PyTorch later.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import torch

from rmtlr.profiles import Profile, get_profile

__all__ = ["MAX_SEED", "as_count", "as_finite", "as_seed", "resolve_device"]

#: Largest seed accepted: what ``torch.manual_seed`` and NumPy both take.
MAX_SEED = 2**63 - 1


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def as_count(value: Any, name: str, *, lo: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is a whole number >= ``lo``.

    Parameters
    ----------
    value : Any
        An integer, or a float with an integral value (``16.0`` but not ``16.5``).
    name : str
        The argument's name, for the error message.
    lo : int
        The smallest value allowed.

    Returns
    -------
    int
        ``value`` as a Python int.

    Raises
    ------
    ValueError
        If ``value`` is not a number (strings, bools, None included), not whole, not
        finite, or below ``lo``.

    Examples
    --------
    >>> as_count(16.0, "batch_size")
    16
    """
    if not (_is_real(value) and math.isfinite(value) and value == int(value) and value >= lo):
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def as_seed(value: Any, name: str = "seed") -> int:
    """Return ``value`` as an ``int`` seed in [0, :data:`MAX_SEED`].

    Parameters
    ----------
    value : Any
        The seed.
    name : str
        The argument's name, for the error message.

    Returns
    -------
    int
        The seed.

    Raises
    ------
    ValueError
        If ``value`` is not a whole number in range (a generator object, a list, a
        fraction or a negative number included).
    """
    if not (_is_real(value) and math.isfinite(value) and value == int(value)
            and 0 <= value <= MAX_SEED):
        raise ValueError(f"{name} must be an integer in [0, 2**63 - 1], got {value!r}")
    return int(value)


def as_finite(value: Any, name: str, *, lo: float = -math.inf, hi: float = math.inf,
              lo_open: bool = False, hi_open: bool = False) -> float:
    """Return ``value`` as a finite ``float`` in the interval given.

    Parameters
    ----------
    value : Any
        The number.
    name : str
        The argument's name, for the error message.
    lo, hi : float
        The interval's ends.
    lo_open, hi_open : bool
        Whether ``lo`` / ``hi`` themselves are excluded.

    Returns
    -------
    float
        ``value`` as a Python float.

    Raises
    ------
    ValueError
        If ``value`` is not a finite real number in the interval.
    """
    ok = _is_real(value) and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ValueError(f"{name} must be a finite number in {left}{lo:g}, {hi:g}{right}, "
                         f"got {value!r}")
    return float(value)


def resolve_device(device: str | torch.device | None = None, *,
                   profile: str | Profile | None = None,
                   argument: str = "device") -> torch.device:
    """Return a device that can hold tensors: ``device``, or the profile's.

    Parameters
    ----------
    device : str or torch.device, optional
        E.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``. None: the profile's device.
    profile : str or Profile, optional
        The run profile whose device is the default (default: the active one,
        :func:`rmtlr.get_profile`). When the profile is given, or decides the device, and
        is the paper-scale ``"full"`` on a CPU, a warning says it would run for days.
    argument : str
        The argument's name, for the error message (e.g. ``"--device"``).

    Returns
    -------
    torch.device
        A device on which a tensor was just created.

    Raises
    ------
    ValueError
        If the device does not exist here (a typo, ``cuda`` without CUDA, a GPU index
        past the last one) or holds no data (``meta``).
    TypeError
        If ``device`` is neither a string nor a ``torch.device``.

    Warns
    -----
    UserWarning
        When the ``full`` profile (given, or the active one deciding the device) runs
        on a CPU.
    """
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    if device is None:
        dev = prof.device
    elif isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except RuntimeError as err:
            raise ValueError(f"{argument} {device!r} is not usable here: {err}") from err
    else:
        raise TypeError(f"{argument} must be a string such as 'cpu' or 'cuda', or a "
                        f"torch.device, got {type(device).__name__}")
    what = (f"{argument} {str(device)!r}" if device is not None
            else f"the {prof.name} profile's device {str(dev)!r}")
    if dev.type == "meta":
        raise ValueError(f"{what} is not usable here: 'meta' tensors hold no data; use cpu, "
                         "cuda or mps")
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as err:  # "not compiled with CUDA" is an assert
        raise ValueError(f"{what} is not usable here: {err}") from err
    if prof.name == "full" and dev.type == "cpu" and (device is None or profile is not None):
        warnings.warn("profile 'full' (paper scale: VGG-16/WRN, 300 epochs) on a CPU would run "
                      "for days; use the quick profile (RMTLR_PROFILE=quick or --profile "
                      "quick) or a GPU", UserWarning, stacklevel=2)
    return dev
