"""One figure style for the whole book.

Light background, labelled axes, and the Okabe–Ito palette, which stays distinguishable
under the common forms of colour blindness. Call :func:`use_style` once per chapter (the
chapter set-up :func:`rmtlr.notebook.start` does); :func:`subplots` sizes one or two panels
per row for the page width, and :func:`stamp` writes, below the axes where it covers no
data, which profile, network and data produced a figure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from rmtlr.rmt.validation import integer

#: Okabe & Ito (2008) colour-blind-safe palette, in the order the book uses it.
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}

#: Roles used consistently across chapters.
THEORY_COLOR = PALETTE["black"]
SGD_COLOR = PALETTE["blue"]
ADAM_COLOR = PALETTE["vermillion"]
FULL_COLOR = PALETTE["blue"]
BATCH_COLOR = PALETTE["orange"]

#: Width in inches of a figure that fills the text column of the rendered book (~700 px).
PAGE_WIDTH = 6.4
#: Height in inches of one row of panels.
ROW_HEIGHT = 3.6

_RC = {
    "figure.figsize": (PAGE_WIDTH, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "lines.linewidth": 1.8,
    "axes.prop_cycle": mpl.cycler(color=list(PALETTE.values())),
}


def use_style() -> None:
    """Apply the book's matplotlib style globally.

    Inside a Jupyter kernel this also selects the inline backend, so that figures are stored
    in the notebook even when ``MPLBACKEND=Agg`` is set in the environment (as in CI), and
    stores them as 2× PNGs that stay sharp on high-DPI screens.
    """
    _inline_in_notebook()
    mpl.rcParams.update(_RC)


def _inline_in_notebook() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell":
        shell.run_line_magic("matplotlib", "inline")
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")


def subplots(ncols: int = 1, nrows: int = 1, *, height: float | None = None,
             **kw: Any) -> tuple[plt.Figure, np.ndarray | plt.Axes]:
    """Make a figure of ``nrows`` × ``ncols`` panels sized for the book's text column.

    At most two panels per row: more would shrink labels below a readable size at 100 %
    zoom, so wider grids are refused; use more rows instead.

    Parameters
    ----------
    ncols : int
        Panels per row, 1 or 2.
    nrows : int
        Rows of panels, >= 1.
    height : float, optional
        Height of one row in inches (default :data:`ROW_HEIGHT`, or 4.0 for one panel).
    **kw
        Passed to :func:`matplotlib.pyplot.subplots` (e.g. ``sharey=True``).

    Returns
    -------
    (Figure, Axes or array of Axes)
        As :func:`matplotlib.pyplot.subplots` returns them, with constrained layout.

    Raises
    ------
    TypeError
        If ``nrows`` is not a number.
    ValueError
        If ``ncols`` is not 1 or 2, or ``nrows`` is not a whole number ≥ 1.
    """
    if ncols not in (1, 2):
        raise ValueError(f"ncols must be 1 or 2 (panels per row at page width), got {ncols!r}")
    nrows = integer("nrows", nrows)
    row = height if height is not None else (4.0 if ncols == nrows == 1 else ROW_HEIGHT)
    kw.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH, row * nrows), **kw)


def colors() -> Iterator[str]:
    """Cycle through the palette (for many curves, e.g. one per batch size).

    Yields
    ------
    str
        The palette's colours in order, from the start again after the last.
    """
    while True:
        yield from PALETTE.values()


def stamp(fig: plt.Figure | plt.Axes, profile_name: str, note: str | None = None) -> plt.Text:
    """Write what produced a figure below its axes, where it covers no data or legend.

    Parameters
    ----------
    fig : Figure or Axes
        The figure (an Axes stands for its figure).
    profile_name : str
        The profile, e.g. ``"quick"``.
    note : str, optional
        What else a reader must know, e.g. ``"VGG-16 at 1/8 width, P = 239,538 | CIFAR-10
        JPEG subset"``.

    Returns
    -------
    matplotlib.text.Text
        The stamp, a figure-level text at the bottom right; ``bbox_inches="tight"`` (the
        book's default) keeps it inside the saved image.
    """
    if isinstance(fig, plt.Axes):
        fig = fig.figure
    text = f"profile: {profile_name}" + (f" | {note}" if note else "")
    return fig.text(0.995, 0.0, text, ha="right", va="top", fontsize=7, color="0.4")


# --- chapters 1-5 ---
# Helpers for the random-matrix chapters: theory curves against simulated points, spectra
# against limit laws, the noise bulk as a band, and reference slopes on log-log axes.

# Imported here, not at the top, so that each chapter group's section stays self-contained.
from collections.abc import Mapping

from numpy.typing import ArrayLike

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


# --- chapter 12 ---


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
