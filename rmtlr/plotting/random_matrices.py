"""Figures of chapters 1-5.

Theory curves against simulated points, spectra against limit laws, the noise bulk as a
band, and reference slopes on log-log axes.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import ArrayLike

from rmtlr.plotting.style import (
    PALETTE,
    THEORY_COLOR,
    colors,
)

#: Line styles given, in order, to theory curves that do not set their own.
THEORY_STYLES = ("-", "--", ":", "-.")


def _series(name: str, label: str, value: tuple) -> tuple[np.ndarray, np.ndarray, dict]:
    """Split a ``(x, y)`` or ``(x, y, style)`` entry, checking its shape."""
    if not isinstance(value, tuple) or len(value) not in (2, 3):
        raise TypeError(f"{name}[{label!r}] must be a tuple (x, y) or (x, y, style), got "
                        f"{type(value).__name__}")
    x = np.asarray(value[0], dtype=float)
    y = np.asarray(value[1], dtype=float)
    style = dict(value[2]) if len(value) == 3 else {}
    if x.shape != y.shape:
        raise ValueError(f"{name}[{label!r}]: x and y must have the same shape, got {x.shape} "
                         f"and {y.shape}")
    return x, y, style


def theory_vs_simulation(
    ax: plt.Axes,
    theory: Mapping[str, tuple] | None = None,
    simulation: Mapping[str, tuple] | None = None,
    *,
    xscale: str = "linear",
    yscale: str = "linear",
    xlabel: str | None = None,
    ylabel: str | None = None,
    legend: str | None = "best",
) -> plt.Axes:
    """Draw theory as lines and simulation as markers, in the book's style.

    Each entry maps a legend label to ``(x, y)`` or ``(x, y, style)``, where ``style`` is a
    dict of matplotlib properties for that series (``color``, ``ls``, ``marker``…; for a
    simulated series also ``yerr`` for error bars). Theory lines without a colour are black
    (:data:`THEORY_COLOR`) with successive :data:`THEORY_STYLES`; simulated series without a
    colour take the palette in order, as circles without lines. A label starting with ``_``
    is left out of the legend, as in matplotlib.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    theory : Mapping[str, tuple], optional
        Label → ``(x, y[, style])`` of predicted curves.
    simulation : Mapping[str, tuple], optional
        Label → ``(x, y[, style])`` of measured points.
    xscale : str
        ``"linear"`` or ``"log"``.
    yscale : str
        ``"linear"`` or ``"log"``.
    xlabel : str, optional
        Label of the x axis.
    ylabel : str, optional
        Label of the y axis.
    legend : str or None
        Legend location (matplotlib's ``loc``), or None for no legend.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, for chaining.

    Raises
    ------
    TypeError
        If an entry is not a tuple ``(x, y)`` or ``(x, y, style)``.
    ValueError
        If x and y of an entry differ in shape, or a scale is not linear or log.
    """
    for name, scale in (("xscale", xscale), ("yscale", yscale)):
        if scale not in ("linear", "log"):
            raise ValueError(f"{name} must be 'linear' or 'log', got {scale!r}")
    styles = iter(THEORY_STYLES * 4)
    for label, value in (theory or {}).items():
        x, y, style = _series("theory", label, value)
        if "color" not in style:
            style.setdefault("ls", next(styles))
            style["color"] = THEORY_COLOR
        ax.plot(x, y, label=label, **style)
    palette = colors()
    for label, value in (simulation or {}).items():
        x, y, style = _series("simulation", label, value)
        yerr = style.pop("yerr", None)
        style.setdefault("color", next(palette))
        style.setdefault("marker", "o")
        style.setdefault("ms", 4)
        style.setdefault("ls", "none")
        if yerr is None:
            ax.plot(x, y, label=label, **style)
        else:
            ax.errorbar(x, y, yerr=yerr, label=label, capsize=2, **style)
    ax.set_xscale(xscale)
    ax.set_yscale(yscale)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if legend is not None and ax.get_legend_handles_labels()[0]:
        ax.legend(loc=legend)
    return ax


def histogram_vs_laws(
    ax: plt.Axes,
    samples: ArrayLike,
    laws: Mapping[str, tuple] | None = None,
    *,
    label: str | None = None,
    bins: int = 60,
    weights: ArrayLike | None = None,
    color: str | None = None,
    log: bool = False,
    xlabel: str | None = r"eigenvalue $\lambda$",
    legend: str | None = "best",
) -> plt.Axes:
    """Draw a density histogram of eigenvalues (or any samples) under limit-law curves.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    samples : array_like
        The values to histogram (normalised to unit area unless ``weights`` are given).
    laws : Mapping[str, tuple], optional
        Label → ``(x, density[, style])`` of limit laws, drawn as in
        :func:`theory_vs_simulation`.
    label : str, optional
        Legend label of the histogram.
    bins : int
        Number of bins, >= 1.
    weights : array_like, optional
        Weight of each sample (e.g. to compare the non-zero eigenvalues with the continuous
        part of a law that also has an atom); the histogram is then not renormalised.
    color : str, optional
        Colour of the bars (default: sky blue).
    log : bool
        Logarithmic density axis (to see outliers next to a bulk).
    xlabel : str, optional
        Label of the x axis; the y axis reads "density".
    legend : str or None
        Legend location, or None for no legend.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, for chaining.

    Raises
    ------
    ValueError
        If ``bins`` < 1, ``samples`` is empty, or ``weights`` differs from it in shape.
    """
    samples = np.asarray(samples, dtype=float).ravel()
    if not (isinstance(bins, int) and bins >= 1):
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    if samples.size == 0:
        raise ValueError("samples must not be empty")
    if weights is not None:
        weights = np.asarray(weights, dtype=float).ravel()
        if weights.shape != samples.shape:
            raise ValueError(f"weights must have the shape of samples {samples.shape}, got "
                             f"{weights.shape}")
    ax.hist(samples, bins=bins, density=weights is None, weights=weights,
            color=color or PALETTE["sky"], alpha=0.55, label=label)
    theory_vs_simulation(ax, laws, legend=None)
    if log:
        ax.set_yscale("log")
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if legend is not None:
        ax.legend(loc=legend)
    return ax


def band(
    ax: plt.Axes,
    x: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike,
    *,
    label: str | None = "noise bulk",
) -> plt.Axes:
    """Shade the region between two curves in light grey, behind the data (a noise bulk).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    x : array_like
        Abscissae.
    lower : array_like
        Lower edge at each x (a scalar for a constant edge).
    upper : array_like
        Upper edge at each x (a scalar for a constant edge).
    label : str, optional
        Legend label.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, for chaining.
    """
    x = np.asarray(x, dtype=float)
    lower = np.broadcast_to(np.asarray(lower, dtype=float), x.shape)
    upper = np.broadcast_to(np.asarray(upper, dtype=float), x.shape)
    ax.fill_between(x, lower, upper, color="0.88", lw=0, zorder=0, label=label)
    return ax


def reference_slope(
    ax: plt.Axes,
    x: ArrayLike,
    *,
    x0: float,
    y0: float,
    exponent: float,
    label: str | None = None,
    color: str = "0.45",
) -> plt.Axes:
    r"""Draw the power law y = y0·(x/x0)^exponent as a thin dashed guide on log-log axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    x : array_like
        Abscissae (> 0).
    x0 : float
        Anchor abscissa (> 0).
    y0 : float
        Value at ``x0``.
    exponent : float
        The power, e.g. 1 for the linear rule, 0.5 for the square-root rule.
    label : str, optional
        Legend label, e.g. ``r"$\propto B$"``.
    color : str
        Line colour.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, for chaining.

    Raises
    ------
    ValueError
        If ``x`` or ``x0`` is not positive.
    """
    x = np.asarray(x, dtype=float)
    if np.any(x <= 0) or not x0 > 0:
        raise ValueError("x and x0 must be > 0 for a power law")
    ax.plot(x, y0 * (x / x0) ** exponent, ls="--", lw=1, color=color, label=label)
    return ax
