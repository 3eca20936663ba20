"""Figures of the book, in one style.

:mod:`rmtlr.plotting.style` holds the style (Okabe–Ito palette, page-width panels,
:func:`stamp` below the axes); the other modules hold each chapter group's figures and read
only stored or computed numbers, never computing a result themselves:

- :mod:`~rmtlr.plotting.random_matrices` — chapters 1–5 (theory against simulation, spectra
  against limit laws);
- :mod:`~rmtlr.plotting.networks` — chapters 6–7 (SLQ densities, noise models, learning-rate
  laws);
- :mod:`~rmtlr.plotting.spectra` — chapter 8 (spectra across training);
- :mod:`~rmtlr.plotting.batch_sweeps` — chapter 9 (learning rate against batch size);
- :mod:`~rmtlr.plotting.learner` — chapter 10 (the Lanczos learner);
- :mod:`~rmtlr.plotting.stability` — chapter 11 (sharpness and stability thresholds);
- :mod:`~rmtlr.plotting.prediction` — chapter 12 (predicting the learning rate).

Every public name is importable from :mod:`rmtlr.plotting` itself.
"""

from __future__ import annotations

from rmtlr.plotting.batch_sweeps import (
    RULE_MARKERS,
    batch_size_axis,
    lam1_against_batch_size,
    loss_against_updates,
    rates_against_batch_size,
    sweep_accuracy,
)
from rmtlr.plotting.learner import (
    plot_accuracy_vs_cost,
    plot_accuracy_vs_epoch,
    plot_convergence,
    plot_learner_trajectories,
    plot_rate_vs_kappa,
)
from rmtlr.plotting.networks import (
    NOISE_MODEL_STYLES,
    plot_batch_lam1,
    plot_lr_vs_batch,
    plot_noise_spectrum,
    plot_ritz_densities,
    plot_slq_vs_exact,
    ritz_density,
)
from rmtlr.plotting.prediction import (
    batch_lam1_models,
    lr_prediction,
    stability_map,
    stable_rates,
)
from rmtlr.plotting.random_matrices import (
    THEORY_STYLES,
    band,
    histogram_vs_laws,
    reference_slope,
    theory_vs_simulation,
)
from rmtlr.plotting.spectra import (
    THEOREM4_COLOR,
    WISHART_COLOR,
    plot_lam1_across_training,
    plot_prediction_errors,
    plot_record_noise_spectrum,
    plot_spectral_densities,
    slq_curve,
)
from rmtlr.plotting.stability import (
    lr_grid_panel,
    series_panel,
    sharpness_panel,
    thresholds_panel,
)
from rmtlr.plotting.style import (
    ADAM_COLOR,
    BATCH_COLOR,
    FULL_COLOR,
    PAGE_WIDTH,
    PALETTE,
    ROW_HEIGHT,
    SGD_COLOR,
    THEORY_COLOR,
    colors,
    stamp,
    subplots,
    use_style,
)

__all__ = [
    "ADAM_COLOR",
    "BATCH_COLOR",
    "FULL_COLOR",
    "NOISE_MODEL_STYLES",
    "PAGE_WIDTH",
    "PALETTE",
    "ROW_HEIGHT",
    "RULE_MARKERS",
    "SGD_COLOR",
    "THEOREM4_COLOR",
    "THEORY_COLOR",
    "THEORY_STYLES",
    "WISHART_COLOR",
    "band",
    "batch_lam1_models",
    "batch_size_axis",
    "colors",
    "histogram_vs_laws",
    "lam1_against_batch_size",
    "loss_against_updates",
    "lr_grid_panel",
    "lr_prediction",
    "plot_accuracy_vs_cost",
    "plot_accuracy_vs_epoch",
    "plot_batch_lam1",
    "plot_convergence",
    "plot_lam1_across_training",
    "plot_learner_trajectories",
    "plot_lr_vs_batch",
    "plot_noise_spectrum",
    "plot_prediction_errors",
    "plot_rate_vs_kappa",
    "plot_record_noise_spectrum",
    "plot_ritz_densities",
    "plot_slq_vs_exact",
    "plot_spectral_densities",
    "rates_against_batch_size",
    "reference_slope",
    "ritz_density",
    "series_panel",
    "sharpness_panel",
    "slq_curve",
    "stability_map",
    "stable_rates",
    "stamp",
    "subplots",
    "sweep_accuracy",
    "theory_vs_simulation",
    "thresholds_panel",
    "use_style",
]
