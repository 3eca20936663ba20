"""Figures of chapter 12.

The batch lambda_1 under each noise model against measurement, the predicted stable
learning rates against the batch size, and the map of every rate a stability search tried.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from rmtlr.plotting.batch_sweeps import batch_size_axis
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
from rmtlr.rmt.validation import integer


def _batch_size_log_axes(ax: plt.Axes, batch_sizes: Any) -> None:
    # B ticked where it was measured; y on a log scale labelled at 1, 2, 5 per decade
    batch_size_axis(ax, batch_sizes)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


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
    _batch_size_log_axes(ax1, B)
    ax1.set(xlabel="batch size B", ylabel="batch λ₁")
    ax1.legend()
    color = SGD_COLOR if result.optimizer == "sgd" else ADAM_COLOR
    high = np.where(np.isfinite(result.lr_high), result.lr_high, result.lr * 10)
    ax2.fill_between(B, result.lr_low, high, color=color, alpha=0.15, lw=0)
    ax2.plot(B, result.lr, "o-", color=color, label=f"{result.optimizer.upper()} α_max")
    _batch_size_log_axes(ax2, B)
    ax2.set(xlabel="batch size B", ylabel="largest stable learning rate")
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
    _batch_size_log_axes(ax, B)
    ax.set(xlabel="batch size B", ylabel="top eigenvalue of H_batch")
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
    _batch_size_log_axes(ax, B)
    ax.set(xlabel="batch size B", ylabel="largest stable learning rate")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc=legend)
    return ax


def stability_map(ax: plt.Axes, trials: dict[int, Any], *, late_step: int,
                  predicted: Any = None, title: str | None = None,
                  legend: str | None = "upper left") -> plt.Axes:
    """Draw every rate a stability search tried, per batch size: stable, or when it diverged.

    A stable trial is a filled circle; a diverged one is a cross, dark when its loss blew up
    within the first ``late_step`` steps (the initial curvature was already too large) and
    light when later (the curvature grew during training).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    trials : dict
        Batch size B → sequence of ``(lr, diverged_at)`` pairs, ``diverged_at`` None for a
        stable trial and the step of divergence otherwise.
    late_step : int
        Divergence after this many steps counts as late, an integer ≥ 1.
    predicted : array_like, optional
        A predicted largest stable rate at each B of ``trials`` (in its order), drawn as a
        line.
    title : str, optional
        Panel title.
    legend : str, optional
        Legend location, or None.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, for chaining.

    Raises
    ------
    ValueError
        If ``trials`` is empty, a rate is not positive and finite, or ``predicted`` does not
        have one value per batch size.
    """
    late_step = integer("late_step", late_step, lo=1)
    if not trials:
        raise ValueError("trials must hold at least one batch size")
    groups: dict[str, tuple[list, list]] = {"stable": ([], []), "early": ([], []),
                                            "late": ([], [])}
    for B, runs in trials.items():
        for lr, step in runs:
            if not (np.isfinite(lr) and lr > 0):
                raise ValueError(f"trials[{B}] has the rate {lr!r}; rates must be positive and finite")
            kind = "stable" if step is None else ("early" if step <= late_step else "late")
            groups[kind][0].append(B)
            groups[kind][1].append(lr)
    styles = {
        "stable": ({"marker": "o", "color": PALETTE["green"], "ms": 6}, "stable"),
        "early": ({"marker": "x", "color": THEORY_COLOR, "ms": 7, "mew": 2},
                  f"diverged by step {late_step}"),
        "late": ({"marker": "x", "color": PALETTE["vermillion"], "ms": 7, "mew": 2},
                 f"diverged after step {late_step}"),
    }
    for kind, (xs, ys) in groups.items():
        if xs:
            kw, label = styles[kind]
            ax.plot(xs, ys, ls="none", label=label, **kw)
    if predicted is not None:
        predicted = np.asarray(predicted, dtype=float)
        if predicted.shape != (len(trials),):
            raise ValueError(f"predicted has {predicted.size} values but trials has "
                             f"{len(trials)} batch sizes")
        ax.plot(list(trials), predicted, "-", color=SGD_COLOR, label="predicted (predict_lr)")
    _batch_size_log_axes(ax, list(trials))
    ax.set(xlabel="batch size B", ylabel="learning rate tried")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc=legend)
    return ax
