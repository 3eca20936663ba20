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
    """Off whenever ``TQDM_DISABLE`` is set; else ``progress``, or (None) on outside pytest."""
    if os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false"):
        return False
    if progress is not None:
        return bool(progress)
    return "PYTEST_CURRENT_TEST" not in os.environ


def progress_bar(iterable: Iterable | None = None, *, desc: str, total: int | None = None,
                 progress: bool | None = None, leave: bool = False) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one when ``iterable`` is None)."""
    return tqdm(iterable, desc=desc, total=total, leave=leave,
                disable=not progress_enabled(progress))
