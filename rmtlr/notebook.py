"""What every chapter does in its first cell, and how it hands results to the prose.

The book says only what its code shows. Numbers in the prose are glued from executed cells
(:func:`glue`, read by myst-nb's ``{glue:text}`` role), figures get numbers and captions
through :func:`figure` and ``{glue:figure}``, and every verdict a chapter prints is an
assertion (:func:`verdict`): if it stops holding, the cell fails, and so does nbval. On
Colab or in plain Jupyter, where myst-nb may be absent, the same calls still display.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import matplotlib.figure
import numpy as np
import torch

from rmtlr import plotting
from rmtlr.data import describe
from rmtlr.profiles import Profile, get_profile
from rmtlr.rmt.validation import integer, random_seed

__all__ = ["figure", "glue", "start", "verdict"]


def start(*, seed: int = 0, threads: int | None = None,
          data: str | Mapping[str, str] | None = None) -> Profile:
    """Set a chapter up: profile, style, seeds, and the first output line.

    Parameters
    ----------
    seed : int
        Seed for torch's global generator (NumPy draws in chapters use explicit generators).
    threads : int, optional
        CPU threads for torch. Default: one under the ``quick`` profile on the CPU, so that
        ``make test`` (one thread per worker) and ``make book`` compute the same floating-point
        sums and so the same outputs; torch's default otherwise.
    data : str or Mapping, optional
        The data set the chapter trains or measures on, as a :func:`rmtlr.data.load` name,
        or a mapping from profile name (``quick``, ``gpu``, ``full``) to one. When given,
        the first output says what it is on a second line (:func:`rmtlr.data.describe`),
        e.g. ``data: CIFAR-10 JPEG subset (…), not CIFAR-100``.

    Returns
    -------
    Profile
        The active profile (:func:`rmtlr.profiles.get_profile`), whose ``describe()`` line is
        printed, as the first output of every chapter.

    Raises
    ------
    TypeError
        If ``seed`` or ``threads`` is not a number.
    ValueError
        If ``seed`` is not a whole number in [0, 2**63 − 1] or ``threads`` not one ≥ 1,
        ``RMTLR_PROFILE`` names no profile (:func:`rmtlr.profiles.get_profile`), or
        ``data`` names no data set or has no entry for the active profile.
    """
    prof = get_profile()
    if isinstance(data, Mapping):
        if prof.name not in data:
            raise ValueError(f"data must have an entry for the active profile {prof.name!r}, "
                             f"got keys {sorted(data)}")
        data = data[prof.name]
    described = None if data is None else describe(data)
    seed = random_seed("seed", seed)
    if threads is None and prof.name == "quick" and prof.device.type == "cpu":
        threads = 1
    if threads is not None:
        torch.set_num_threads(integer("threads", threads))
    torch.manual_seed(seed)
    plotting.use_style()
    print(prof.describe())
    if described is not None:
        print(f"data: {described}")
    return prof


def _myst_glue():
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return None
    return myst_glue


def glue(name: str, value: Any, *, display: bool = False) -> Any:
    """Store ``value`` under ``name`` for the prose (``{glue:text}`name:.2f```).

    Parameters
    ----------
    name : str
        Key, unique in the book, e.g. ``"ch8-lam1-full"``.
    value : Any
        A number, string or other displayable object. NumPy scalars are stored as Python
        numbers, so format specs apply.
    display : bool
        Also show the value under the cell.

    Returns
    -------
    Any
        ``value``, so that ``x = glue("name", compute())`` reads naturally.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If ``name`` is empty.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not name:
        raise ValueError("name must be a non-empty string, got ''")
    stored = value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value
    if isinstance(stored, numbers.Real) and not isinstance(stored, bool):
        stored = float(stored) if not isinstance(stored, int) else stored
    myst_glue = _myst_glue()
    if myst_glue is not None:
        myst_glue(name, stored, display=display)
    elif display:
        print(stored)
    return value


def figure(name: str, fig: matplotlib.figure.Figure) -> None:
    """Show a figure under its cell and store it for a numbered, captioned ``{glue:figure}``.

    The figure is closed afterwards so the inline backend does not draw it a second time.
    Tag the cell ``remove-output``: the rendered book then shows the figure once, with its
    number and caption, where the prose places ``{glue:figure}`name```.

    Parameters
    ----------
    name : str
        Key of the figure, e.g. ``"fig-ch8-spectra"``.
    fig : matplotlib.figure.Figure
        The figure.
    """
    import matplotlib.pyplot as plt

    myst_glue = _myst_glue()
    if myst_glue is not None:
        myst_glue(name, fig, display=True)
    else:
        from IPython.display import display as show

        show(fig)
    plt.close(fig)


def verdict(claim: str, holds: bool) -> None:
    """Print a claim the prose makes, and fail the cell if it does not hold.

    Parameters
    ----------
    claim : str
        The claim in words, e.g. ``"the GGN model is within 25% of every batch λ1"``.
    holds : bool
        Whether the measurement supports it.

    Raises
    ------
    AssertionError
        If ``holds`` is false: a chapter whose claim stopped holding must not render.
    """
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"holds must be a bool (a comparison's result), got {holds!r}")
    ok = bool(holds)
    print(f"{'✓' if ok else '✗'} {claim}")
    if not ok:
        raise AssertionError(f"claim no longer holds: {claim}")
