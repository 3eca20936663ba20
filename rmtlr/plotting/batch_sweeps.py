"""Figures of chapter 9.

Batch size on a log axis, accuracy of a sweep, loss against optimiser updates, learning
rates and the batch lambda_1 against the batch size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from rmtlr.plotting.style import (
    BATCH_COLOR,
    FULL_COLOR,
    THEORY_COLOR,
    colors,
)

#: Markers of the learning-rate rules of chapter 9 (shape as well as colour tells them apart).
RULE_MARKERS = ("o", "s", "D", "^", "v", "P", "X")


def _rule_styles(names: list[str]) -> dict[str, tuple[str, str]]:
    """Give each rule name a (colour, marker), in the palette's order."""
    return {n: (c, m) for n, c, m in zip(names, colors(), RULE_MARKERS * 2)}


def batch_size_axis(ax: plt.Axes, batch_sizes: Sequence[float]) -> plt.Axes:
    """Put batch size B on a base-2 logarithmic x-axis, ticked and labelled at the given B.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    batch_sizes : sequence of float
        The batch sizes to tick, each > 0.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.

    Raises
    ------
    ValueError
        If ``batch_sizes`` is empty or holds a value <= 0.
    """
    ticks = sorted({float(b) for b in batch_sizes})
    if not ticks or ticks[0] <= 0:
        raise ValueError(f"batch_sizes must be a non-empty list of numbers > 0, got {batch_sizes!r}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [f"{b:g}" for b in ticks])
    ax.minorticks_off()
    ax.set_xlabel("batch size $B$")
    return ax


def sweep_accuracy(ax: plt.Axes, sweeps: Mapping[str, Sequence], *, chance: float,
                   threshold: float, title: str | None = None) -> plt.Axes:
    """Plot final validation accuracy against batch size, one line per learning-rate rule.

    Each rule's line joins the mean over seeds of the runs that did not diverge; every
    seed is a small dot; a run that diverged is a cross on the chance line. The chance
    level and the stability threshold (chance + margin) are drawn as horizontal lines,
    so a point under the threshold is a run that did not train.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    sweeps : Mapping of str to sequence
        Rule name -> its points, objects with ``batch_size``, ``val_acc`` (per seed, None
        after divergence) and ``diverged`` (per seed), as
        :class:`rmtlr.sweeps.SweepPoint` has.
    chance : float
        Chance accuracy, in [0, 1].
    threshold : float
        The accuracy a stable run must reach, in [chance, 1].
    title : str, optional
        Panel title.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, with a legend.

    Raises
    ------
    ValueError
        If ``sweeps`` is empty or ``chance``/``threshold`` are out of range.
    """
    if not sweeps:
        raise ValueError("sweeps must name at least one rule")
    if not (0 <= chance <= threshold <= 1):
        raise ValueError(f"need 0 <= chance <= threshold <= 1, got chance={chance!r}, "
                         f"threshold={threshold!r}")
    styles = _rule_styles(list(sweeps))
    all_B = []
    for name, points in sweeps.items():
        col, mk = styles[name]
        B = np.array([p.batch_size for p in points], dtype=float)
        all_B += list(B)
        accs = [[np.nan if a is None else a for a in p.val_acc] for p in points]
        mean = np.array([np.nanmean(a) if not np.all(np.isnan(a)) else np.nan for a in accs])
        ax.plot(B, mean, marker=mk, color=col, label=name)
        for b, a, p in zip(B, accs, points):
            ax.plot([b] * len(a), a, ".", color=col, ms=4, alpha=0.6)
            n_div = sum(bool(d) for d in p.diverged)
            if n_div:
                ax.plot([b], [chance], "x", color=col, ms=9, mew=2)
    ax.axhline(chance, color="0.5", lw=1, ls="--", label=f"chance ({chance:.0%})")
    ax.axhline(threshold, color="0.3", lw=1, ls=":", label=f"stable if ≥ {threshold:.0%}")
    batch_size_axis(ax, all_B)
    ax.set_ylabel("final validation accuracy")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return ax


def loss_against_updates(ax: plt.Axes, runs: Mapping[str, dict], *,
                         title: str | None = None) -> plt.Axes:
    """Plot training loss against optimiser updates; a cross where a run diverged.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    runs : Mapping of str to dict
        Label -> a training record with ``step_loss`` (per step, or window means with
        ``step_loss_at``, as :func:`rmtlr.sweeps.thin_step_loss` stores them) and
        ``outcome``.
    title : str, optional
        Panel title.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, loss on a logarithmic axis, with a legend.

    Raises
    ------
    ValueError
        If ``runs`` is empty.
    """
    if not runs:
        raise ValueError("runs must hold at least one record")
    styles = _rule_styles(list(runs))
    for name, rec in runs.items():
        col, _ = styles[name]
        loss = rec["step_loss"]
        at = rec.get("step_loss_at") or list(range(1, len(loss) + 1))
        x = np.asarray(at, dtype=float)
        y = np.array([np.nan if v is None else v for v in loss], dtype=float)
        ax.plot(x, y, color=col, label=name)
        if rec["outcome"] != "ok":
            finite = np.flatnonzero(np.isfinite(y))
            if finite.size:
                ax.plot([x[finite[-1]]], [y[finite[-1]]], "x", color=col, ms=9, mew=2)
    ax.set_yscale("log")
    ax.set(xlabel="updates", ylabel="training loss (batch mean)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return ax


def rates_against_batch_size(ax: plt.Axes, tried: Mapping[str, Sequence],
                             predicted: Mapping[str, tuple[Sequence[float], Sequence[float]]]
                             | None = None, *, title: str | None = None,
                             measured: Mapping[int, tuple[float, float]] | None = None
                             ) -> plt.Axes:
    """Plot the rates a sweep tried against B, stable or not, beside predicted maxima.

    A filled marker is a rate at which every seed was stable, an open one a rate at which
    some seed was not, a cross one at which some seed diverged; lines are predicted
    largest stable rates α_max(B); grey bars are measured brackets of α_max(B) (as
    :func:`rmtlr.sweeps.max_stable_lr` returns them), the threshold between their ends.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    tried : Mapping of str to sequence
        Rule name -> its points, objects with ``batch_size``, ``lr``, ``stable`` and
        ``diverged`` (per seed), as :class:`rmtlr.sweeps.SweepPoint` has.
    predicted : Mapping of str to (sequence, sequence), optional
        Model name -> (B, α_max(B)), drawn as black lines of different dashes.
    title : str, optional
        Panel title.
    measured : Mapping of int to (float, float), optional
        B -> (largest stable rate, smallest failing rate) with 0 < lower < upper; an upper
        end of ``inf`` (a censored search) is drawn as an upward triangle at the lower.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, both axes logarithmic, with a legend.

    Raises
    ------
    ValueError
        If ``tried`` is empty or a bracket of ``measured`` is not 0 < lower < upper.
    """
    if not tried:
        raise ValueError("tried must name at least one rule")
    for B, (lo, hi) in (measured or {}).items():
        if not 0 < lo < hi:
            raise ValueError(f"measured[{B}] must be a bracket (lower, upper) with "
                             f"0 < lower < upper, got ({lo}, {hi})")
    styles = _rule_styles(list(tried))
    all_B = []
    for name, points in tried.items():
        col, mk = styles[name]
        B = [p.batch_size for p in points]
        all_B += B
        ax.plot(B, [p.lr for p in points], color=col, lw=1, alpha=0.5)
        for p in points:
            ok = all(p.stable)
            ax.plot([p.batch_size], [p.lr], mk, color=col, mfc=col if ok else "white", ms=7,
                    label=name if p is points[0] else None)
            if any(p.diverged):
                ax.plot([p.batch_size], [p.lr], "x", color=col, ms=5, mew=1.5)
    for (name, (B, alpha)), ls in zip((predicted or {}).items(), ("-", "--", "-.", ":")):
        ax.plot(B, alpha, color=THEORY_COLOR, ls=ls, lw=1.5, label=name)
    for i, (B, (lo, hi)) in enumerate(sorted((measured or {}).items())):
        label = "measured α_max (bracket)" if i == 0 else None
        if np.isfinite(hi):
            ax.plot([B, B], [lo, hi], color="0.45", lw=5, alpha=0.6, solid_capstyle="butt",
                    label=label)
        else:
            ax.plot([B], [lo], "^", color="0.45", ms=7, label=label)
        all_B.append(B)
    batch_size_axis(ax, all_B)
    ax.set_yscale("log")
    ax.set_ylabel(r"learning rate $\alpha$")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return ax


def lam1_against_batch_size(ax: plt.Axes, measured: tuple[Sequence[float], Sequence],
                            predicted: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                            *, full: float, title: str | None = None) -> plt.Axes:
    """Plot the measured top eigenvalue of batch curvature against B, beside the models.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    measured : (sequence, sequence)
        (B, values): for each B the measured λ'_1 of one or more batches (a sequence per
        B, drawn as dots with their mean as a marker).
    predicted : Mapping of str to (sequence, sequence)
        Model name -> (B, predicted λ'_1(B)).
    full : float
        λ_1 of the full-data curvature, drawn as a horizontal line.
    title : str, optional
        Panel title.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, both axes logarithmic, with a legend.

    Raises
    ------
    ValueError
        If the measured B and values differ in length.
    """
    B, values = measured
    if len(B) != len(values):
        raise ValueError(f"measured needs one list of values per B, got {len(B)} B and "
                         f"{len(values)} lists")
    for b, v in zip(B, values):
        v = np.atleast_1d(np.asarray(v, dtype=float))
        ax.plot([b] * len(v), v, ".", color=BATCH_COLOR, ms=5, alpha=0.7)
    ax.plot(B, [np.mean(v) for v in values], "o", color=BATCH_COLOR, ms=7,
            label="measured, batch")
    for (name, (b, lam)), ls in zip(predicted.items(), ("-", "--", "-.", ":")):
        ax.plot(b, lam, color=THEORY_COLOR, ls=ls, lw=1.5, label=name)
    ax.axhline(full, color=FULL_COLOR, lw=1.2, label=r"full data $\lambda_1$")
    batch_size_axis(ax, list(B))
    ax.set_yscale("log")
    ax.set_ylabel(r"top eigenvalue $\lambda_1'$")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return ax
