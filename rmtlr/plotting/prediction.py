"""Figures of chapter 12.

The batch lambda_1 under each noise model against measurement, and the predicted stable
learning rates against the batch size.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from rmtlr.plotting.random_matrices import band
from rmtlr.plotting.style import (
    ADAM_COLOR,
    BATCH_COLOR,
    FULL_COLOR,
    PALETTE,
    SGD_COLOR,
    THEORY_COLOR,
    subplots,
)


def lr_prediction(result: Any, *, axes: Any = None) -> plt.Figure:
    """Draw a :class:`rmtlr.predict.LRPrediction`: λ'₁(B) with measurements, and the rate.

    Left: the predicted batch λ₁ with its ± one-sd band, every calibration batch's measured
    λ₁ (small dots) and their means, and the full-data λ₁. Right: the predicted largest
    stable rate with its range. Both on log–log axes against B.

    Parameters
    ----------
    result : rmtlr.predict.LRPrediction
        What :func:`rmtlr.predict_lr` returned.
    axes : sequence of two matplotlib Axes, optional
        Where to draw (default: a new two-panel figure).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    if axes is None:
        fig, axes = subplots(2)
    else:
        fig = axes[0].figure
    ax1, ax2 = axes
    B = np.asarray(result.batch_sizes, dtype=float)
    lam, sd = result.lam1_batch, result.lam1_batch_sd
    band(ax1, B, np.maximum(lam - sd, lam * 1e-3), lam + sd, label="± batch-to-batch sd")
    ax1.plot(B, lam, "-", color=THEORY_COLOR, label=f"predicted ({result.noise_model})")
    ax1.axhline(result.inputs.lam1, color=FULL_COLOR, ls=":", lw=1.2, label="full-data λ₁")
    cal = result.inputs.calibration
    if cal:
        for b, vals in cal.items():
            ax1.plot([b] * len(vals), vals, ".", color=BATCH_COLOR, ms=4, alpha=0.6)
        ax1.plot(list(cal), [np.mean(v) for v in cal.values()], "o", color=BATCH_COLOR,
                 label="measured (mean)")
    ax1.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="batch λ₁")
    ax1.legend()
    color = SGD_COLOR if result.optimizer == "sgd" else ADAM_COLOR
    high = np.where(np.isfinite(result.lr_high), result.lr_high, result.lr * 10)
    ax2.fill_between(B, result.lr_low, high, color=color, alpha=0.15, lw=0)
    ax2.plot(B, result.lr, "o-", color=color, label=f"{result.optimizer.upper()} α_max")
    ax2.set(xscale="log", yscale="log", xlabel="batch size B",
            ylabel="largest stable learning rate")
    ax2.legend()
    return fig


def batch_lam1_models(ax: plt.Axes, result: Any, *, title: str | None = None,
                      legend: str | None = "upper right") -> plt.Axes:
    """Draw λ'₁(B) under every noise model of a prediction, with the measured batch λ₁.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    result : rmtlr.predict.LRPrediction
        A prediction (its ``lam1_batch_models`` and calibration measurements are drawn).
    title : str, optional
        Panel title.
    legend : str, optional
        Legend location, or None for no legend.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, for chaining.
    """
    B = np.asarray(result.batch_sizes, dtype=float)
    styles = {"directional": ("-", THEORY_COLOR), "wigner": ("--", PALETTE["purple"]),
              "wishart": (":", PALETTE["green"])}
    for name, lam in result.lam1_batch_models.items():
        ls, color = styles.get(name, ("-.", "0.5"))
        label = name + (" (used)" if name == result.noise_model else "")
        ax.plot(B, lam, ls=ls, color=color, label=label)
    ax.axhline(result.inputs.lam1, color=FULL_COLOR, ls=":", lw=1, label="full-data λ₁")
    cal = result.inputs.calibration
    for b, vals in cal.items():
        ax.plot([b] * len(vals), vals, ".", color=BATCH_COLOR, ms=4, alpha=0.6)
    ax.errorbar(list(cal), [np.mean(v) for v in cal.values()],
                yerr=[np.std(v, ddof=1) for v in cal.values()], fmt="o", color=BATCH_COLOR,
                capsize=3, label="measured (mean ± sd)")
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="top eigenvalue of H_batch")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc=legend)
    return ax


def stable_rates(ax: plt.Axes, B: Any, measured: Any, bracket_high: Any, *,
                 predicted: Any = None, predicted_range: tuple[Any, Any] | None = None,
                 baselines: dict[str, Any] | None = None, title: str | None = None,
                 legend: str | None = "lower right") -> plt.Axes:
    """Draw measured largest stable rates against B, with predictions and baselines.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    B : array_like
        Batch sizes.
    measured : array_like
        Measured largest stable rate at each B (the lower end of its bracket).
    bracket_high : array_like
        The smallest unstable rate tried at each B (the bracket's upper end; ``inf`` when
        censored), drawn as an upward error bar.
    predicted : array_like, optional
        A prediction at each B (drawn as a line).
    predicted_range : tuple of array_like, optional
        (low, high) band around ``predicted``.
    baselines : dict, optional
        Label → rates at each B (or ``(rates, style dict)``), drawn as dashed lines.
    title : str, optional
        Panel title.
    legend : str, optional
        Legend location, or None.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, for chaining.
    """
    B = np.asarray(B, dtype=float)
    measured = np.asarray(measured, dtype=float)
    high = np.asarray(bracket_high, dtype=float)
    up = np.where(np.isfinite(high), high - measured, 0.0)
    if predicted_range is not None:
        lo, hi = (np.asarray(a, dtype=float) for a in predicted_range)
        ax.fill_between(B, lo, np.where(np.isfinite(hi), hi, predicted), color=SGD_COLOR,
                        alpha=0.15, lw=0)
    if predicted is not None:
        ax.plot(B, predicted, "-", color=SGD_COLOR, label="predicted (predict_lr)")
    markers = iter("sD^v<>")
    for label, value in (baselines or {}).items():
        rates, style = value if isinstance(value, tuple) else (value, {})
        kw = {"ls": "--", "lw": 1.2, "marker": next(markers), "ms": 4, **style}
        ax.plot(B, rates, label=label, **kw)
    ax.errorbar(B, measured, yerr=[np.zeros_like(up), up], fmt="o", color=THEORY_COLOR,
                capsize=3, label="measured (max_stable_lr)", zorder=5)
    ax.set(xscale="log", yscale="log", xlabel="batch size B",
           ylabel="largest stable learning rate")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc=legend)
    return ax
