"""One figure style for the whole book.

Light background, labelled axes, and the Okabe–Ito palette, which stays distinguishable
under the common forms of colour blindness. Call :func:`use_style` once per chapter (the
chapter set-up :func:`rmtlr.notebook.start` does); :func:`subplots` sizes one or two panels
per row for the page width, and :func:`stamp` writes, below the axes where it covers no
data, which profile, network and data produced a figure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import ArrayLike

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
             **kw) -> tuple[plt.Figure, np.ndarray | plt.Axes]:
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
    ValueError
        If ``ncols`` is not 1 or 2, or ``nrows`` < 1.
    """
    if ncols not in (1, 2):
        raise ValueError(f"ncols must be 1 or 2 (panels per row at page width), got {ncols!r}")
    if not (isinstance(nrows, int) and nrows >= 1):
        raise ValueError(f"nrows must be an integer >= 1, got {nrows!r}")
    row = height if height is not None else (4.0 if ncols == nrows == 1 else ROW_HEIGHT)
    kw.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH, row * nrows), **kw)


def colors() -> Iterator[str]:
    """Cycle through the palette (for many curves, e.g. one per batch size)."""
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


# --- chapter 11 ---

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
