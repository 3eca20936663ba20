"""Figures of chapter 10.

Convergence on a quadratic, steps per e-fold against the condition number, the learner's
learning-rate and momentum trajectories, and accuracy against epoch and against cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def _check_series(name: str, series) -> None:
    if not series:
        raise ValueError(f"{name} must hold at least one curve, got none")


def plot_convergence(ax: plt.Axes, traces: Mapping[str, Sequence[float]], *,
                     rates: Mapping[str, float] | None = None,
                     ylabel: str = r"$\|w_t\| / \|w_0\|$") -> plt.Axes:
    """Plot distances to the minimum against the step, on a log scale, with reference rates.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    traces : Mapping of str to sequence of float
        Label → ‖w_t‖ for t = 0, 1, …; each is divided by its first value. Non-finite or
        overflowing entries (a diverging run) end the curve, marked with a cross.
    rates : Mapping of str to float, optional
        Label → per-step factor r of the theory: a dashed line ∝ r^t in the trace's
        colour, through the trace's value at the middle of its finite part.
    ylabel : str
        Label of the y axis.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.

    Raises
    ------
    ValueError
        If ``traces`` is empty, a trace is empty or its first value is not positive and
        finite, or a rate is not in (0, 1].
    """
    _check_series("traces", traces)
    rates = dict(rates or {})
    for label, trace in traces.items():
        y = np.asarray(trace, dtype=float)
        if y.size == 0 or not (np.isfinite(y[0]) and y[0] > 0):
            raise ValueError(f"trace {label!r} must start with a positive finite value")
        y = y / y[0]
        bad = np.flatnonzero(~np.isfinite(y) | (y > 1e12))
        end = int(bad[0]) if bad.size else y.size
        (line,) = ax.semilogy(np.arange(end), y[:end], label=label)
        if end < y.size:
            ax.plot(end - 1, y[end - 1], "x", color=line.get_color(), ms=9, mew=2)
        if label in rates:
            r = rates[label]
            if not 0 < r <= 1:
                raise ValueError(f"rates[{label!r}] must be in (0, 1], got {r!r}")
            mid = max(end // 2, 0)
            t = np.arange(end)
            ax.semilogy(t, y[mid] * r ** (t - mid), "--", color=line.get_color(), lw=1)
    ax.set(xlabel="step t", ylabel=ylabel)
    ax.legend()
    return ax


def plot_rate_vs_kappa(ax: plt.Axes, kappas: Sequence[float], *,
                       theory: Mapping[str, Sequence[float]],
                       measured: Mapping[str, Sequence[float]] | None = None) -> plt.Axes:
    """Plot steps per e-fold of the error, −1/ln r, against the condition number κ.

    On log–log axes gradient descent's (κ − 1)/(κ + 1) gives a slope of 1 (∝ κ/2) and the
    accelerated methods' slope ½ (∝ √κ/2): the reason to accelerate.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    kappas : sequence of float
        The condition numbers, each > 1.
    theory : Mapping of str to sequence of float
        Method → per-step factor r(κ) of the theory at each κ (lines).
    measured : Mapping of str to sequence of float, optional
        Method → measured factor at each κ (markers, same colour as the method's line).

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.

    Raises
    ------
    ValueError
        If ``theory`` is empty, a κ is not > 1, lengths differ from ``kappas``, or a
        factor is not in (0, 1).
    """
    _check_series("theory", theory)
    k = np.asarray(kappas, dtype=float)
    if k.ndim != 1 or not (k > 1).all():
        raise ValueError(f"kappas must be a 1-D sequence of numbers > 1, got {kappas!r}")

    def steps(name: str, label: str, r) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        if r.shape != k.shape or not ((r > 0) & (r < 1)).all():
            raise ValueError(f"{name}[{label!r}] must give one factor in (0, 1) per kappa")
        return -1 / np.log(r)

    colour = {}
    for label, r in theory.items():
        (line,) = ax.loglog(k, steps("theory", label, r), label=label)
        colour[label] = line.get_color()
    for label, r in (measured or {}).items():
        ax.loglog(k, steps("measured", label, r), "o", color=colour.get(label, "0.3"),
                  mfc="none", ms=7)
    ax.set(xlabel=r"condition number $\kappa = \lambda_1/\lambda_{\min}$",
           ylabel="steps per e-fold of the error")
    ax.legend(title="lines: theory, circles: measured")
    return ax


def plot_learner_trajectories(axes: Sequence[plt.Axes],
                              runs: Mapping[str, tuple[Sequence[Mapping], int]], *,
                              total_epochs: int) -> Sequence[plt.Axes]:
    """Plot the learner's learning rate and momentum against the epoch (held between estimates).

    Parameters
    ----------
    axes : sequence of two matplotlib.axes.Axes
        The learning rate (log scale) is drawn on the first, the momentum on the second.
    runs : Mapping of str to (sequence of Mapping, int)
        Label → (the run's estimates, each with ``epoch``, ``lr`` and ``momentum``;
        entries with ``failed`` are skipped; the epochs the run trained). Each value holds
        from its estimate to the next one (a step plot).
    total_epochs : int
        The planned length of the runs: a run that trained fewer epochs (it diverged)
        ends with a cross.

    Returns
    -------
    sequence of matplotlib.axes.Axes
        ``axes``.

    Raises
    ------
    ValueError
        If ``runs`` is empty, a run has no estimates, ``axes`` does not hold two axes, or
        ``total_epochs`` < 1.
    """
    _check_series("runs", runs)
    if not (isinstance(total_epochs, (int, np.integer)) and total_epochs >= 1):
        raise ValueError(f"total_epochs must be an integer >= 1, got {total_epochs!r}")
    if len(axes) != 2:
        raise ValueError(f"axes must be two axes (learning rate, momentum), got {len(axes)}")
    for label, (records, epochs) in runs.items():
        recs = [r for r in records if "failed" not in r]
        if not recs:
            raise ValueError(f"run {label!r} has no estimates to plot")
        ep = [r["epoch"] for r in recs]
        end = max(epochs, ep[-1])
        for ax, field in zip(axes, ("lr", "momentum")):
            values = [r[field] for r in recs]
            (line,) = ax.step(ep + [end], values + values[-1:], where="post", label=label)
            ax.plot(ep, values, "o", color=line.get_color(), ms=4)
            if epochs < total_epochs:
                ax.plot(end, values[-1], "x", color=line.get_color(), ms=9, mew=2)
    axes[0].set(yscale="log", xlabel="epoch", ylabel=r"learning rate $\alpha$")
    axes[1].set(xlabel="epoch", ylabel=r"momentum $\rho$")
    axes[0].legend()
    return axes


def plot_accuracy_vs_epoch(ax: plt.Axes,
                           curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], *,
                           ylabel: str = "validation accuracy") -> plt.Axes:
    """Plot accuracy against the epoch, one line per method.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    curves : Mapping of str to (sequence of int, sequence of float)
        Label → (epochs, accuracies in [0, 1]); a line ends where its run stopped.
    ylabel : str
        Label of the y axis.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.

    Raises
    ------
    ValueError
        If ``curves`` is empty or a curve's two sequences differ in length.
    """
    _check_series("curves", curves)
    for label, (epochs, acc) in curves.items():
        if len(epochs) != len(acc):
            raise ValueError(f"curve {label!r}: {len(epochs)} epochs but {len(acc)} values")
        ax.plot(epochs, acc, marker="o", ms=3, label=label)
    ax.set(xlabel="epoch", ylabel=ylabel)
    ax.legend()
    return ax


def plot_accuracy_vs_cost(ax: plt.Axes, points: Mapping[str, tuple[float, float]], *,
                          xlabel: str = "cost in training epochs (tuning and estimates included)"
                          ) -> plt.Axes:
    """Plot each method's final accuracy against what it cost to get there.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    points : Mapping of str to (float, float)
        Label → (cost > 0, accuracy in [0, 1]); each point is labelled on the plot.
    xlabel : str
        Label of the x axis.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.

    Raises
    ------
    ValueError
        If ``points`` is empty or a cost is not positive and finite.
    """
    _check_series("points", points)
    for label, (cost, acc) in points.items():
        if not (np.isfinite(cost) and cost > 0):
            raise ValueError(f"points[{label!r}]: cost must be positive and finite, got {cost!r}")
    max_cost = max(cost for cost, _ in points.values())
    accs = [acc for _, acc in points.values()]
    acc_span = (max(accs) - min(accs)) or 1.0
    placed: list[tuple[float, float]] = []
    for label, (cost, acc) in points.items():
        (dot,) = ax.plot([cost], [acc], "o", ms=8, label=label)
        # Points that (nearly) coincide, e.g. two tuned baselines at the same cost and
        # accuracy, get their labels stacked one line further down each.
        near = sum(abs(cost - c) <= 0.08 * max_cost and abs(acc - a) <= 0.05 * acc_span
                   for c, a in placed)
        placed.append((cost, acc))
        ax.annotate(label, (cost, acc), textcoords="offset points", xytext=(0, -14 - 10 * near),
                    ha="center", fontsize=8, color=dot.get_color())
    # A linear axis from zero: costs differ by a grid's size (a factor of a few), and the
    # reader compares them as multiples; labels centred below the points.
    ax.set(xlabel=xlabel, ylabel="test accuracy")
    ax.set_xlim(0, 1.35 * max_cost)
    ax.margins(y=0.15)
    return ax
