"""Run profiles: ``quick`` (CPU, minutes), ``gpu`` (one GPU, ~30 min a chapter), ``full``.

Every chapter runs the same code under all three:

- ``quick``: a CPU, minutes per chapter, offline: reduced networks on the CIFAR-10 JPEG
  subset shipped with rmtlr. The book's stored outputs are this profile's.
- ``gpu``: one GPU such as a free Colab T4: the paper's networks at full width on
  CIFAR-100 (downloaded by torchvision), sized so that each heavy chapter finishes in
  about 30 minutes. The default when CUDA is available.
- ``full``: the paper's experiments at the paper's scale (GPU-days); opt-in only.

The profile is chosen by the ``RMTLR_PROFILE`` environment variable; without it the
default is ``gpu`` when CUDA is available and ``quick`` otherwise, so nobody starts a
multi-day run by accident. Asking for ``gpu`` or ``full`` on a machine without a GPU works,
but warns (:class:`ProfileWarning`).

Chapters declare their own sizes next to the code that uses them with
:meth:`Profile.pick`, e.g. ``epochs = prof.pick(quick=3, gpu=30, full=300)``, so the reader
sees every setting in one parameters cell. Settings shared by several chapters live in the
fields below.
"""

from __future__ import annotations

import os
import platform
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from rmtlr.rmt.validation import integer

__all__ = ["PROFILE_NAMES", "Profile", "ProfileWarning", "default_device", "get_profile",
           "resolve_device"]

#: The profile names :func:`get_profile` accepts.
PROFILE_NAMES = ("quick", "gpu", "full")
_UNSET = object()


class ProfileWarning(UserWarning):
    """The chosen profile does not suit this machine (``gpu`` or ``full`` without a GPU)."""


def default_device() -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then the CPU.

    Returns
    -------
    torch.device
        ``cuda``, ``mps`` or ``cpu``.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _usable(device: torch.device, what: str) -> torch.device:
    """Return ``device`` if this machine can compute on it, else a ValueError naming why."""
    def refuse(why: str) -> ValueError:
        return ValueError(f"{what} {str(device)!r} is not usable here: {why}")

    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise refuse("CUDA is not available on this machine; use 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise refuse(f"this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise refuse("it needs Apple MPS, which is not available on this machine")
    elif device.type == "meta":
        raise refuse("'meta' tensors hold no data, so it cannot run the computations; use "
                     "'cpu', 'cuda' or 'mps'")
    elif device.type != "cpu":
        try:  # another backend (xpu, ...): usable if it holds a tensor
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError) as err:  # "not compiled with ..." is an assert
            raise refuse(str(err)) from None
    return device


def resolve_device(device: str | torch.device | None = None, *,
                   profile: str | Profile | None = None,
                   argument: str = "device") -> torch.device:
    """Return a device this machine can compute on: ``device``, or the profile's.

    The one place where :mod:`rmtlr` checks devices: profiles, training, sweeps,
    curvature operators and the command line all call it, so a bad device fails the same
    way everywhere, before any work starts.

    Parameters
    ----------
    device : str or torch.device or None, optional
        E.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; None: the profile's device.
    profile : str or Profile or None, optional
        The profile whose device is the default (default: the active one,
        :func:`get_profile`). Only consulted when ``device`` is None.
    argument : str
        The argument's name, for the error message (e.g. ``"--device"``).

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    TypeError
        If ``device`` is neither None, a string nor a :class:`torch.device`.
    ValueError
        If the device is not a name torch knows (``"bogus"``), is not present on this
        machine (``"cuda"`` without CUDA, a GPU index past the last one, ``"mps"``
        without Apple MPS), or holds no data (``"meta"``).

    Warns
    -----
    ProfileWarning
        When ``device`` is None and the profile that decides it is ``gpu`` or ``full`` on a machine
        without a GPU (see :func:`get_profile`). An explicit device never warns.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device(None, profile="quick")
    device(type='cpu')
    >>> resolve_device("bogus")
    Traceback (most recent call last):
        ...
    ValueError: device 'bogus' is not usable here: not a device name torch knows (use 'cpu', 'cuda', 'cuda:1' or 'mps')
    """
    if device is None:
        prof = profile if isinstance(profile, Profile) else get_profile(profile)
        return _usable(prof.device, f"the {prof.name} profile's device")
    if isinstance(device, str):
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ValueError(f"{argument} {device!r} is not usable here: not a device name "
                             "torch knows (use 'cpu', 'cuda', 'cuda:1' or 'mps')") from None
    elif isinstance(device, torch.device):
        dev = device
    else:
        raise TypeError(f"{argument} must be a string such as 'cpu' or 'cuda', or a "
                        f"torch.device, got {device!r} ({type(device).__name__})")
    return _usable(dev, argument)


@dataclass(frozen=True)
class Profile:
    """Sizes that decide how long a chapter runs.

    Attributes
    ----------
    name : str
        ``"quick"``, ``"gpu"`` or ``"full"``.
    device : torch.device
        Where tensors live (``cuda`` for ``gpu`` and ``full`` when present).
    lanczos_steps : int
        Lanczos iterations m for spectra (the paper uses m = 100).
    slq_vectors : int
        Random start vectors for stochastic Lanczos quadrature.
    batch_sizes : tuple of int
        The batch-size grid of learning-rate sweeps.
    seeds : int
        How many seeds each sweep point is repeated with.
    offline : bool
        Whether data must come from offline stand-ins (no download is attempted).

    Raises
    ------
    TypeError
        If a field has the wrong type.
    ValueError
        If ``name`` is not a profile name or a size is not a whole number ≥ 1 (whole
        floats such as ``40.0`` are stored as ints).
    """

    name: str
    device: torch.device = field(default_factory=default_device)
    lanczos_steps: int = 100
    slq_vectors: int = 3
    batch_sizes: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096)
    seeds: int = 1
    offline: bool = False

    def __post_init__(self) -> None:
        """Check the fields, so that a hand-made profile fails here and not mid-chapter."""
        if self.name not in PROFILE_NAMES:
            raise ValueError(f"name must be one of {PROFILE_NAMES}, got {self.name!r}")
        if not isinstance(self.device, torch.device):
            raise TypeError(f"device must be a torch.device, got {self.device!r}")
        if not isinstance(self.batch_sizes, tuple) or not self.batch_sizes:
            raise TypeError(f"batch_sizes must be a non-empty tuple, got {self.batch_sizes!r}")
        # Whole floats (from JSON) are stored as ints: equal profiles compare equal.
        for name in ("lanczos_steps", "slq_vectors", "seeds"):
            object.__setattr__(self, name, integer(name, getattr(self, name)))
        object.__setattr__(self, "batch_sizes",
                           tuple(integer("batch_sizes entry", b) for b in self.batch_sizes))
        if not isinstance(self.offline, bool):
            raise TypeError(f"offline must be True or False, got {self.offline!r}")

    def pick(self, *, quick: Any, full: Any, gpu: Any = _UNSET) -> Any:
        """Return the value of a setting under this profile.

        Parameters
        ----------
        quick : Any
            The value for the quick profile.
        full : Any
            The value for the full profile (the paper's setting).
        gpu : Any, optional
            The value for the gpu profile. Chapters whose ``full`` setting takes GPU-hours
            must give it; where it is omitted the gpu profile uses ``full``'s value.

        Returns
        -------
        Any
            The value for this profile.

        Examples
        --------
        >>> get_profile("quick").pick(quick=3, gpu=30, full=300)
        3
        """
        if self.name == "quick":
            return quick
        if self.name == "gpu" and gpu is not _UNSET:
            return gpu
        return full

    def describe(self) -> str:
        """Describe profile, device and versions in one line; every chapter prints it first.

        Returns
        -------
        str
            E.g. ``"rmtlr profile: quick | device: cpu | torch 2.4.1 | python 3.11.7"``.
        """
        dev = str(self.device)
        if self.device.type == "cuda":
            dev += f" ({torch.cuda.get_device_name(self.device)})"
        return (
            f"rmtlr profile: {self.name} | device: {dev} | torch {torch.__version__} | "
            f"python {platform.python_version()}"
        )


def get_profile(name: str | None = None, device: str | torch.device | None = None) -> Profile:
    """Return the active profile.

    Parameters
    ----------
    name : str, optional
        ``"quick"``, ``"gpu"`` or ``"full"`` (case and surrounding spaces are ignored);
        default ``$RMTLR_PROFILE``, else ``"gpu"`` when CUDA is available and ``"quick"``
        otherwise.
    device : str or torch.device, optional
        Override the device (default: :func:`default_device` for ``gpu`` and ``full``,
        the CPU for ``quick`` so that stored outputs are reproducible).

    Returns
    -------
    Profile
        The profile.

    Raises
    ------
    TypeError
        If ``name`` is not a string or ``device`` not a string or torch.device.
    ValueError
        If ``name`` is not a profile name, or ``device`` is unknown to torch, not present
        on this machine (``'cuda'`` without CUDA, ``'cuda:3'`` on a one-GPU machine), or
        cannot compute (``'meta'``).

    Warns
    -----
    ProfileWarning
        When ``gpu`` or ``full`` (GPU-hours to GPU-days) would run on the CPU because no
        GPU is available and no device was asked for.

    Examples
    --------
    >>> prof = get_profile("quick")
    >>> prof.name, prof.device.type, prof.lanczos_steps
    ('quick', 'cpu', 40)
    """
    from_env = name is None
    if name is None:
        name = os.environ.get("RMTLR_PROFILE") or ("gpu" if torch.cuda.is_available() else "quick")
    if not isinstance(name, str):
        raise TypeError(f"profile name must be a string ('quick', 'gpu' or 'full'), got {name!r}")
    name = name.strip().lower()
    if name not in PROFILE_NAMES:
        raise ValueError(f"profile name must be one of {PROFILE_NAMES}, got {name!r} "
                         "(set RMTLR_PROFILE=quick, gpu or full)")
    if name == "quick":
        dev = resolve_device(device) if device is not None else torch.device("cpu")
        return Profile(
            name="quick",
            device=dev,
            lanczos_steps=40,
            slq_vectors=2,
            batch_sizes=(8, 16, 32, 64, 128, 256, 512, 1024),
            seeds=1,
            offline=True,
        )
    if device is not None:
        return Profile(name=name, device=resolve_device(device))
    dev = _usable(default_device(), f"the {name} profile's device")
    if dev.type == "cpu":
        source = (f"profile {name!r} (set by RMTLR_PROFILE={name} in the environment)"
                  if from_env else f"profile {name!r}")
        scale = "about 30 GPU-minutes" if name == "gpu" else "hours to days on a GPU"
        warnings.warn(
            f"{source} asks for runs of {scale} per heavy chapter, but no GPU is "
            "available, so they would run on the CPU. Use RMTLR_PROFILE=quick or --profile "
            "quick (minutes on a CPU), or run on a machine with CUDA.",
            ProfileWarning,
            stacklevel=2,
        )
    return Profile(name=name, device=dev)
