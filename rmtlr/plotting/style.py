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
