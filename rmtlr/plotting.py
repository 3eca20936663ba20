"""One figure style for the whole book.

Light background, labelled axes, and the Okabe–Ito palette, which stays distinguishable
under the common forms of colour blindness. Call :func:`use_style` once per chapter;
:func:`stamp` writes which profile (and which stand-in data, if any) produced a figure.
"""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib as mpl
import matplotlib.pyplot as plt

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

_RC = {
    "figure.figsize": (6.4, 4.0),
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
    in the notebook even when ``MPLBACKEND=Agg`` is set in the environment (as in CI).
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


def colors() -> Iterator[str]:
    """Cycle through the palette (for many curves, e.g. one per batch size)."""
    while True:
        yield from PALETTE.values()


def stamp(ax: plt.Axes, profile_name: str, note: str | None = None) -> None:
    """Write the profile (and e.g. 'offline stand-in data') in the axes' lower-right corner."""
    text = f"profile: {profile_name}" + (f" | {note}" if note else "")
    ax.text(0.99, 0.01, text, transform=ax.transAxes, ha="right", va="bottom",
            fontsize=7, color="0.4")
