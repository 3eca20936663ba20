"""Run profiles: ``quick`` (CPU, minutes, offline) and ``full`` (one GPU, paper scale).

Every chapter runs the same code under both. The profile is chosen by the
``RMTLR_PROFILE`` environment variable; without it the default is ``full`` only when CUDA
is available, so a reader on a laptop never starts a multi-day run by accident.

Chapters declare their own sizes next to the code that uses them with
:meth:`Profile.pick`, e.g. ``epochs = prof.pick(quick=3, full=300)``, so the reader sees
both settings in one parameters cell. Settings shared by several chapters live in the
fields below.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

import torch

PROFILE_NAMES = ("quick", "full")


def default_device() -> torch.device:
    """The best available device: CUDA, then Apple MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class Profile:
    """Sizes that decide how long a chapter runs.

    Attributes
    ----------
    name: ``"quick"`` or ``"full"``.
    device: where tensors live (``cuda`` for full when present).
    lanczos_steps: Lanczos iterations m for spectra (the paper uses m = 100).
    slq_vectors: random start vectors for stochastic Lanczos quadrature.
    batch_sizes: the batch-size grid of learning-rate sweeps.
    seeds: how many seeds each sweep point is repeated with.
    offline: whether data must come from offline stand-ins (no download is attempted).
    """

    name: str
    device: torch.device = field(default_factory=default_device)
    lanczos_steps: int = 100
    slq_vectors: int = 3
    batch_sizes: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096)
    seeds: int = 1
    offline: bool = False

    def pick(self, *, quick: Any, full: Any) -> Any:
        """Return ``quick`` or ``full`` according to this profile."""
        return quick if self.name == "quick" else full

    def describe(self) -> str:
        """One line naming profile, device and versions; every chapter prints it first."""
        dev = str(self.device)
        if self.device.type == "cuda":
            dev += f" ({torch.cuda.get_device_name(self.device)})"
        return (
            f"rmtlr profile: {self.name} | device: {dev} | torch {torch.__version__} | "
            f"python {platform.python_version()}"
        )


def get_profile(name: str | None = None, device: str | torch.device | None = None) -> Profile:
    """The active profile.

    Parameters
    ----------
    name: ``"quick"`` or ``"full"``; default ``$RMTLR_PROFILE``, else ``"full"`` when CUDA
        is available and ``"quick"`` otherwise.
    device: override the device (default: :func:`default_device` for ``full``, CPU for
        ``quick`` so that stored outputs are reproducible).
    """
    if name is None:
        name = os.environ.get("RMTLR_PROFILE") or ("full" if torch.cuda.is_available() else "quick")
    name = name.strip().lower()
    if name not in PROFILE_NAMES:
        raise ValueError(f"profile name must be one of {PROFILE_NAMES}, got {name!r} "
                         "(set RMTLR_PROFILE=quick or RMTLR_PROFILE=full)")
    if name == "quick":
        dev = torch.device(device) if device is not None else torch.device("cpu")
        return Profile(
            name="quick",
            device=dev,
            lanczos_steps=40,
            slq_vectors=2,
            batch_sizes=(8, 16, 32, 64, 128, 256, 512, 1024),
            seeds=1,
            offline=True,
        )
    dev = torch.device(device) if device is not None else default_device()
    return Profile(name="full", device=dev)
