"""rmtlr: learning rates as a function of batch size, from random-matrix theory.

The library behind the executable textbook. Subpackages:

- :mod:`rmtlr.rmt` — random-matrix laws, outliers and the batch-noise model (NumPy/SciPy).
- :mod:`rmtlr.scaling` — the learning-rate laws (SGD linear, Adam square root).
- :mod:`rmtlr.curvature` — Hessian/GGN linear operators of PyTorch networks, Lanczos, SLQ.
- :mod:`rmtlr.models`, :mod:`rmtlr.data` — the paper's networks and data sets.
- :mod:`rmtlr.profiles` — the ``quick`` (CPU) and ``full`` (GPU, paper scale) profiles.
- :mod:`rmtlr.plotting` — the book's figure style.

``import rmtlr`` is cheap: the subpackages and the main entry points below are imported on
first use (PEP 562), and torch is imported only by the ones that need it, so
``rmtlr.batch_outlier`` or ``rmtlr.rmt`` work without it.

Examples
--------
>>> import rmtlr
>>> rmtlr.batch_outlier(1.0, P=10_000, B=100, N=float("inf"), sigma_eps=0.02)
1.04
>>> "HessianOperator" in dir(rmtlr)
True
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

__version__ = "0.1.0"

#: Subpackages and modules reachable as attributes of :mod:`rmtlr` (every public one).
_SUBMODULES = tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
)

#: Main entry points: name -> the module that defines it.
_ENTRY_POINTS = {
    "HessianOperator": "rmtlr.curvature",
    "GGNOperator": "rmtlr.curvature",
    "lanczos": "rmtlr.curvature",
    "top_eigenpairs": "rmtlr.curvature",
    "slq_density": "rmtlr.curvature",
    "hessian_variance": "rmtlr.curvature",
    "batch_outlier": "rmtlr.rmt",
    "effective_batch_size": "rmtlr.rmt",
    "sgd_max_lr": "rmtlr.scaling",
    "adam_max_lr": "rmtlr.scaling",
    "fit_power_law": "rmtlr.scaling",
    "Profile": "rmtlr.profiles",
    "default_device": "rmtlr.profiles",
    "get_profile": "rmtlr.profiles",
}

__all__ = ["__version__", *_SUBMODULES, *_ENTRY_POINTS]  # noqa: PLE0604 (all strings)


def __getattr__(name: str) -> Any:
    """Import a subpackage or an entry point on first access (PEP 562).

    Parameters
    ----------
    name : str
        The attribute asked for.

    Returns
    -------
    Any
        The module or object.

    Raises
    ------
    AttributeError
        If ``name`` is neither a subpackage nor an entry point.
    """
    if name in _SUBMODULES:
        return importlib.import_module(f"rmtlr.{name}")
    if name in _ENTRY_POINTS:
        value = getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'rmtlr' has no attribute {name!r}")


def __dir__() -> list[str]:
    """List the public names, including those not imported yet.

    Returns
    -------
    list of str
        Sorted names.
    """
    return sorted(set(globals()) | set(__all__))
