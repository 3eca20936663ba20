"""rmtlr: learning rates as a function of batch size, from random-matrix theory.

The library behind the executable textbook. Subpackages and modules, each depending only
on those above it:

- :mod:`rmtlr.rmt` — random-matrix laws, outliers and the batch-noise model (NumPy/SciPy);
  :mod:`rmtlr.rmt.validation` checks the arguments of the whole library.
- :mod:`rmtlr.scaling` — the learning-rate laws (SGD linear, Adam square root).
- :mod:`rmtlr.profiles` — the ``quick`` (CPU) and ``full`` (GPU, paper scale) profiles, and
  :func:`~rmtlr.profiles.resolve_device`, the one device check.
- :mod:`rmtlr.curvature` — Hessian/GGN linear operators of PyTorch networks, Lanczos, SLQ.
- :mod:`rmtlr.models`, :mod:`rmtlr.data` — the paper's networks and data sets.
- :mod:`rmtlr.results` — the results store: append-only JSON Lines, resumable runs.
- :mod:`rmtlr.train`, :mod:`rmtlr.lr_rules`, :mod:`rmtlr.sweeps` — the training loop,
  learning-rate rules α(B), and resumable sweeps and maximal-stable-rate searches.
- :mod:`rmtlr.experiments` — spectra across training, Theorem 4 and GGN predictions.
- :mod:`rmtlr.learner` — learning rate and momentum from Lanczos (the paper's Sec. 10.2).
- :mod:`rmtlr.noise_scale` — the gradient noise scale of McCandlish et al. (2018).
- :mod:`rmtlr.stability` — batch sharpness and mean-square stability thresholds.
- :mod:`rmtlr.predict` — :func:`~rmtlr.predict.predict_lr`: the largest stable learning
  rate at any batch size, from the curvature of your own network.
- :mod:`rmtlr.notebook`, :mod:`rmtlr.plotting` — chapter set-up, glue, and figure style.

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
    "entry_variance": "rmtlr.rmt",
    "ggn_batch_outlier": "rmtlr.rmt",
    "implied_sigma_eps": "rmtlr.scaling",
    "crossover_batch_size": "rmtlr.scaling",
    "Profile": "rmtlr.profiles",
    "default_device": "rmtlr.profiles",
    "get_profile": "rmtlr.profiles",
    "resolve_device": "rmtlr.profiles",
    "ResultsFile": "rmtlr.results",
    "TrainConfig": "rmtlr.train",
    "train": "rmtlr.train",
    "sweep": "rmtlr.sweeps",
    "max_stable_lr": "rmtlr.sweeps",
    "lr_rule_from_spec": "rmtlr.lr_rules",
    "LanczosLearner": "rmtlr.learner",
    "lr_momentum_from_ritz": "rmtlr.learner",
    "batch_sharpness": "rmtlr.stability",
    "expected_batch_sharpness": "rmtlr.stability",
    "mean_square_stability_threshold": "rmtlr.stability",
    "gradient_noise_scale": "rmtlr.noise_scale",
    "predict_lr": "rmtlr.predict",
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
