"""One progress-bar helper for the whole library.

Plain text bars (``tqdm.std``), not ``tqdm.auto``: the latter warns in every Jupyter kernel
that lacks ipywidgets and draws widgets that a rendered book cannot show, while text bars
work the same in a terminal, in Jupyter and on Colab. ``TQDM_DISABLE`` (set by ``make test``
and ``make book``) turns every bar off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tqdm.std import tqdm

__all__ = ["progress_bar", "progress_enabled"]


def progress_enabled(progress: bool | None) -> bool:
    """Decide whether a progress bar is shown.

    Parameters
    ----------
    progress : bool or None
        The caller's choice; None means on, except under pytest.

    Returns
    -------
    bool
        False whenever ``TQDM_DISABLE`` is set (to anything but ``""``, ``0``, ``false``);
        else ``progress``, or for None whether this runs outside pytest.

    Examples
    --------
    >>> progress_enabled(False)
    False
    """
    if os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false"):
        return False
    if progress is not None:
        return bool(progress)
    return "PYTEST_CURRENT_TEST" not in os.environ


def progress_bar(iterable: Iterable | None = None, *, desc: str, total: int | None = None,
                 progress: bool | None = None, leave: bool = False) -> tqdm:
    """Make a tqdm bar over ``iterable`` (or a manual one when ``iterable`` is None).

    Parameters
    ----------
    iterable : Iterable, optional
        What to iterate over; None for a bar advanced by hand with ``update``.
    desc : str
        The label shown before the bar.
    total : int, optional
        Number of steps, when ``iterable`` has no length.
    progress : bool or None
        Show the bar (see :func:`progress_enabled`).
    leave : bool
        Keep the finished bar on screen.

    Returns
    -------
    tqdm.std.tqdm
        The bar (disabled, but still iterable, when progress is off).

    Examples
    --------
    >>> list(progress_bar(range(3), desc="steps", progress=False))
    [0, 1, 2]
    """
    return tqdm(iterable, desc=desc, total=total, leave=leave,
                disable=not progress_enabled(progress))
