"""Figures of chapter 11.

Three curvatures against 2/eta during training, learning-rate thresholds against B, the
B x learning-rate outcome grid with the best rates and the rules, and plain series panels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import ArrayLike

from rmtlr.plotting.style import (
    BATCH_COLOR,
    FULL_COLOR,
    PALETTE,
    THEORY_COLOR,
    colors,
)


def _as_1d(name: str, values: ArrayLike, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape "
                         f"{arr.shape}")
    if n is not None and arr.size != n:
        raise ValueError(f"{name} has {arr.size} values but the x-axis has {n}")
    return arr


def sharpness_panel(ax: plt.Axes, step: ArrayLike, *, lam1: ArrayLike, lam1_batch: ArrayLike,
                    batch_sharpness: ArrayLike, lr: float, batch_size: int | str | None = None,
                    xlabel: str = "SGD step") -> list:
    """Plot the three curvatures of a constant-rate SGD run against the line 2/η.

    Full-data λ₁ (what sits at 2/η under gradient descent, the edge of stability), the
    mean batch λ₁ (what the paper's Eq. 24 bounds) and batch sharpness 𝔼[gᵀH_Bg/gᵀg]
    (what sits at 2/η in the edge of stochastic stability), on a log axis.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    step : array_like
        Step (or epoch) of each checkpoint.
    lam1 : array_like
        Full-data λ₁ at each checkpoint.
    lam1_batch : array_like
        Mean batch λ₁ at each checkpoint.
    batch_sharpness : array_like
        Batch sharpness at each checkpoint.
    lr : float
        The learning rate η > 0; the dashed line is 2/η.
    batch_size : int or str, optional
        B for the title, e.g. 32 or ``"N"``.
    xlabel : str
        Label of the x-axis.

    Returns
    -------
    list of matplotlib.lines.Line2D
        The 2/η line, then the three curves.

    Raises
    ------
    ValueError
        If the arrays are not 1-D of one length, or ``lr`` is not > 0.
    """
    x = _as_1d("step", step)
    if not (isinstance(lr, (int, float, np.floating)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    curves = [("full-data λ₁", lam1, FULL_COLOR, "o"),
              ("batch λ₁ (mean over batches)", lam1_batch, BATCH_COLOR, "s"),
              ("batch sharpness", batch_sharpness, PALETTE["green"], "^")]
    lines = [ax.axhline(2.0 / lr, color=THEORY_COLOR, ls="--", lw=1.2, label="2/η")]
    for label, values, colour, marker in curves:
        y = _as_1d(label, values, x.size)
        lines += ax.plot(x, y, color=colour, marker=marker, ms=3, lw=1.2, label=label)
    ax.set(yscale="log", xlabel=xlabel, ylabel="curvature")
    if batch_size is not None:
        ax.set_title(f"B = {batch_size}, η = {lr:g}")
    return lines


def thresholds_panel(ax: plt.Axes, batch_sizes: ArrayLike, thresholds: Mapping[str, ArrayLike],
                     *, exact: str | None = None,
                     ylabel: str = "largest stable learning rate") -> list:
    """Plot learning-rate thresholds against the batch size on log–log axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    batch_sizes : array_like
        The batch sizes B.
    thresholds : Mapping
        Label → one threshold per batch size (e.g. the exact mean-square η*, 2/λ₁,
        2/𝔼λ₁(H_B), Theorem 4's 2/λ'₁).
    exact : str, optional
        The label drawn as the reference (black, thick, with markers).
    ylabel : str
        Label of the y-axis.

    Returns
    -------
    list of matplotlib.lines.Line2D
        One line per threshold, in the order given.

    Raises
    ------
    ValueError
        If ``thresholds`` is empty, ``exact`` is not one of its labels, or an array does
        not match ``batch_sizes``.
    """
    B = _as_1d("batch_sizes", batch_sizes)
    if not thresholds:
        raise ValueError("thresholds must map at least one label to values")
    if exact is not None and exact not in thresholds:
        raise ValueError(f"exact must be one of the labels {list(thresholds)}, got {exact!r}")
    others = (c for c in colors() if c != THEORY_COLOR)
    lines = []
    for label, values in thresholds.items():
        y = _as_1d(label, values, B.size)
        if label == exact:
            lines += ax.plot(B, y, color=THEORY_COLOR, lw=2.4, marker="o", ms=4, label=label,
                             zorder=3)
        else:
            lines += ax.plot(B, y, color=next(others), lw=1.4, marker=".", label=label)
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel=ylabel)
    return lines


def lr_grid_panel(ax: plt.Axes, batch_sizes: ArrayLike, lrs: ArrayLike, values: ArrayLike, *,
                  best: ArrayLike | None = None, rule: Mapping[str, ArrayLike] | None = None,
                  label: str = "final training loss") -> mpl.collections.QuadMesh:
    """Draw a (batch size × learning rate) grid of outcomes, its best rates and a rule.

    Cells are coloured by ``values`` (linear colour scale); NaN cells (diverged runs) are
    left grey. ``best`` marks one rate per batch size (white dots, joined), ``rule``
    draws reference rules such as α ∝ √B.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    batch_sizes : array_like
        The grid's batch sizes (columns), ascending.
    lrs : array_like
        The grid's learning rates (rows), ascending.
    values : array_like
        Outcome per cell, shape (len(lrs), len(batch_sizes)); NaN for a diverged run.
    best : array_like, optional
        One learning rate per batch size to mark.
    rule : Mapping, optional
        Label → one learning rate per batch size, drawn as dashed lines.
    label : str
        What ``values`` are (the colour bar's label).

    Returns
    -------
    matplotlib.collections.QuadMesh
        The coloured grid.

    Raises
    ------
    ValueError
        If shapes do not match or ``values`` has no positive finite entry.
    """
    B = _as_1d("batch_sizes", batch_sizes)
    lr = _as_1d("lrs", lrs)
    V = np.asarray(values, dtype=float)
    if V.shape != (lr.size, B.size):
        raise ValueError(f"values must have shape (len(lrs), len(batch_sizes)) = "
                         f"{(lr.size, B.size)}, got {V.shape}")
    finite = V[np.isfinite(V) & (V > 0)]
    if finite.size == 0:
        raise ValueError("values has no positive finite entry to colour")

    def edges(v: np.ndarray) -> np.ndarray:
        logv = np.log(v)
        mid = (logv[1:] + logv[:-1]) / 2
        step0 = logv[1] - logv[0] if v.size > 1 else 1.0
        step1 = logv[-1] - logv[-2] if v.size > 1 else 1.0
        return np.exp(np.concatenate([[logv[0] - step0 / 2], mid, [logv[-1] + step1 / 2]]))

    ax.set_facecolor("0.85")
    mesh = ax.pcolormesh(edges(B), edges(lr), np.ma.masked_invalid(V), shading="flat",
                         cmap="viridis", vmin=finite.min(), vmax=finite.max())
    ax.figure.colorbar(mesh, ax=ax, label=label)
    if best is not None:
        ax.plot(B, _as_1d("best", best, B.size), color="white", marker="o", ms=6, mec="black",
                lw=1.5, label="best rate")
    for (name, rates), colour in zip((rule or {}).items(),
                                     (PALETTE[c] for c in ("vermillion", "orange", "sky"))):
        ax.plot(B, _as_1d(name, rates, B.size), color=colour, ls="--", lw=1.8, label=name)
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="learning rate α")
    ax.set_xticks(B, [f"{b:g}" for b in B], rotation=45 if B.size > 5 else 0)
    ax.minorticks_off()
    ax.grid(False)
    return mesh


def series_panel(ax: plt.Axes, x: ArrayLike, series: Mapping[str, ArrayLike], *, xlabel: str,
                 ylabel: str, logy: bool = True, markers: bool = True,
                 line_colors: Sequence[str] | None = None) -> list:
    """Plot several named series against one x-axis, in the book's colour order.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    x : array_like
        The shared x values.
    series : Mapping
        Label → y values (one per x); NaN values leave gaps.
    xlabel : str
        Label of the x-axis.
    ylabel : str
        Label of the y-axis.
    logy : bool
        Logarithmic y-axis.
    markers : bool
        Mark every point.
    line_colors : sequence of str, optional
        One colour per series (default: the palette in order), e.g. to keep a quantity's
        colour from another panel.

    Returns
    -------
    list of matplotlib.lines.Line2D
        One line per series.

    Raises
    ------
    ValueError
        If ``series`` is empty, a series does not match ``x``, or ``line_colors`` has
        fewer entries than ``series``.
    """
    xs = _as_1d("x", x)
    if not series:
        raise ValueError("series must map at least one label to values")
    if line_colors is not None and len(line_colors) < len(series):
        raise ValueError(f"line_colors has {len(line_colors)} entries for {len(series)} "
                         "series")
    palette = iter(line_colors) if line_colors is not None else colors()
    lines = []
    for (label, values), colour in zip(series.items(), palette):
        lines += ax.plot(xs, _as_1d(label, values, xs.size), color=colour,
                         marker="o" if markers else None, ms=3, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, yscale="log" if logy else "linear")
    return lines
