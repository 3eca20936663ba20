"""Figures of chapters 6-7.

SLQ densities from stored Ritz values (through SLQDensity.density_on, never a second
smoothing code), the batch lambda_1 against the noise models' predictions, the spectrum of
epsilon against the semicircle of its Frobenius norm, and learning rates against B.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from rmtlr.plotting.style import (
    BATCH_COLOR,
    PALETTE,
    THEORY_COLOR,
    colors,
)

if TYPE_CHECKING:
    from rmtlr.curvature import SLQDensity


#: Colours and line styles of the noise models of :mod:`rmtlr.noise_models`.
NOISE_MODEL_STYLES = {
    "theorem4": {"color": PALETTE["purple"], "ls": "--", "label": "Theorem 4 (Wigner)"},
    "wishart": {"color": PALETTE["green"], "ls": "-", "label": "spiked Wishart"},
    "top_direction": {"color": PALETTE["sky"], "ls": ":", "label": "Lemma 5 along $v_1$"},
}


def ritz_density(nodes: np.ndarray | list, weights: np.ndarray | list, *, P: int,
                 kernel_width: float | None = None,
                 grid: np.ndarray | None = None) -> SLQDensity:
    """Rebuild a :class:`rmtlr.curvature.SLQDensity` from stored Ritz values and weights.

    A results file keeps the nodes θ_k and weights τ_k of a Lanczos run; this puts them
    back into the object :func:`rmtlr.curvature.slq_density` returns, smoothed by its own
    :meth:`~rmtlr.curvature.SLQDensity.density_on`. The bulk edges follow the paper's rule
    (the extreme Ritz values of weight ≥ 1/P); ``zero_mass`` is not recomputed (NaN).

    Parameters
    ----------
    nodes : array_like
        Ritz values, shape (m,) for one start vector or (n_v, m).
    weights : array_like
        Ritz weights of the same shape; each row sums to 1.
    P : int
        Size of the operator, >= 1.
    kernel_width : float, optional
        Gaussian width h > 0; default 1% of the nodes' span.
    grid : numpy.ndarray, optional
        Evaluation points; default 800 points spanning the nodes ± 5h.

    Returns
    -------
    SLQDensity
        The density on ``grid``.

    Raises
    ------
    ValueError
        If the shapes differ, the nodes are empty or not finite, or P < 1.

    Examples
    --------
    >>> d = ritz_density([0.0, 1.0], [0.5, 0.5], P=10, kernel_width=0.1)
    >>> round(float(np.sum(d.density) * (d.grid[1] - d.grid[0])), 3)
    1.0
    """
    from rmtlr.curvature import SLQDensity

    th = np.atleast_2d(np.asarray(nodes, dtype=float))
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    if th.shape != w.shape or th.size == 0:
        raise ValueError(f"nodes and weights must be non-empty and of the same shape, got "
                         f"{th.shape} and {w.shape}")
    if not (np.all(np.isfinite(th)) and np.all(np.isfinite(w))):
        raise ValueError("nodes and weights must be finite")
    if not (isinstance(P, (int, np.integer)) and P >= 1):
        raise ValueError(f"P must be an integer >= 1, got {P!r}")
    span = float(th.max() - th.min())
    h = kernel_width if kernel_width is not None else (0.01 * span if span > 0 else 1.0)
    if grid is None:
        grid = np.linspace(th.min() - 5 * h, th.max() + 5 * h, 800)
    heavy = w >= 1.0 / P
    upper = float(np.mean(np.where(heavy, th, -np.inf).max(axis=1)))
    lower = float(np.mean(np.where(heavy, th, np.inf).min(axis=1)))
    dens = SLQDensity(th, w, np.asarray(grid, float), np.zeros(len(grid)), float(h), int(P),
                      upper, lower, float("nan"))
    return SLQDensity(th, w, dens.grid, dens.density_on(dens.grid), float(h), int(P), upper,
                      lower, float("nan"))


def plot_slq_vs_exact(ax: plt.Axes, eigenvalues: np.ndarray, density: SLQDensity, *,
                      bins: int = 80,
                      label: str = "SLQ") -> None:
    """Draw a histogram of exact eigenvalues and an SLQ density over it (log density axis).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    eigenvalues : numpy.ndarray
        The exact spectrum (e.g. of a dense Hessian).
    density : SLQDensity
        The estimate; drawn on its own grid.
    bins : int
        Histogram bins.
    label : str
        Legend label of the SLQ curve.
    """
    ev = np.asarray(eigenvalues, dtype=float)
    ax.hist(ev, bins=bins, density=True, color=PALETTE["sky"], alpha=0.6,
            label=f"exact eigenvalues (P = {ev.size})")
    ax.plot(density.grid, density.density, color=PALETTE["vermillion"], label=label)
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 10 * float(np.max(density.density)))
    ax.set(xlabel="eigenvalue λ", ylabel="spectral density")
    ax.legend(loc="upper right")


def plot_ritz_densities(ax: plt.Axes, curves: dict[str, dict], *, P: int,
                        kernel_fraction: float = 0.01, floor: float = 1e-6) -> np.ndarray:
    """Draw SLQ densities of stored Ritz values on one log-density axis.

    Each curve is smoothed by :func:`ritz_density` on a common grid with a Gaussian of
    ``kernel_fraction`` of the grid's span; a triangle marks each curve's largest Ritz
    value (its λ_1), which Lanczos resolves first.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    curves : dict
        {label: {"nodes": ..., "weights": ...}}, in drawing order.
    P : int
        Size of the operators.
    kernel_fraction : float
        Kernel width h as a fraction of the span, in (0, 1).
    floor : float
        Smallest density drawn (the log axis starts there), > 0.

    Returns
    -------
    numpy.ndarray
        The common grid.

    Raises
    ------
    ValueError
        If ``curves`` is empty or ``kernel_fraction`` or ``floor`` is out of range.
    """
    if not curves:
        raise ValueError("curves must hold at least one density")
    if not 0 < kernel_fraction < 1 or not floor > 0:
        raise ValueError(f"kernel_fraction must be in (0, 1) and floor > 0, got "
                         f"{kernel_fraction!r}, {floor!r}")
    lo = min(float(np.min(c["nodes"])) for c in curves.values())
    hi = max(float(np.max(c["nodes"])) for c in curves.values())
    h = kernel_fraction * ((hi - lo) or 1.0)
    grid = np.linspace(lo - 4 * h, hi + 4 * h, 1200)
    for (label, c), color in zip(curves.items(), colors()):
        d = ritz_density(c["nodes"], c["weights"], P=P, kernel_width=h, grid=grid)
        ax.plot(grid, np.maximum(d.density, floor), color=color, label=label)
        ax.plot([float(np.max(c["nodes"]))], [2 * floor], marker="v", color=color, ls="none")
    ax.set_yscale("log")
    ax.set_ylim(floor, None)
    ax.set(xlabel="eigenvalue λ", ylabel="spectral density (SLQ)")
    ax.legend(loc="upper right")
    return grid


def plot_batch_lam1(ax: plt.Axes, rows: list[dict], *, models: tuple[str, ...] = (
        "theorem4", "wishart"), title: str | None = None) -> None:
    """Draw measured batch λ'_1 against B with the noise models' predictions.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw (log-log).
    rows : list of dict
        Rows of :func:`rmtlr.noise_models.prediction_rows` for one network and curvature.
    models : tuple of str
        Which predictions to draw (keys of :data:`NOISE_MODEL_STYLES`).
    title : str, optional
        Panel title.

    Raises
    ------
    ValueError
        If ``rows`` is empty, mixes networks or curvatures, or names an unknown model.
    """
    if not rows or len({(r["network"], r["curvature"]) for r in rows}) != 1:
        raise ValueError("rows must be the non-empty rows of one network and curvature")
    unknown = [m for m in models if m not in NOISE_MODEL_STYLES]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {list(NOISE_MODEL_STYLES)}")
    rows = sorted(rows, key=lambda r: r["B"])
    B = np.array([r["B"] for r in rows], dtype=float)
    ax.errorbar(B, [r["measured"] for r in rows], yerr=[r["sd"] for r in rows], fmt="o",
                color=BATCH_COLOR, capsize=3, label="measured (mean ± sd)", zorder=3)
    for m in models:
        style = NOISE_MODEL_STYLES[m]
        ax.plot(B, [r[m] for r in rows], marker=".", color=style["color"], ls=style["ls"],
                label=style["label"])
    ax.axhline(rows[0]["lam1_full"], color="0.5", lw=1, ls=":", label="full data $\\lambda_1$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="batch size $B$", ylabel="top eigenvalue $\\lambda'_1$")
    if title:
        ax.set_title(title, fontsize=10)


def plot_noise_spectrum(ax: plt.Axes, nodes: np.ndarray | list, weights: np.ndarray | list, *,
                        P: int, scale: float, label: str = "$\\varepsilon$, SLQ",
                        floor: float = 1e-4) -> None:
    """Draw the spectrum of ε against the semicircle with the same Frobenius norm.

    The semicircle of radius 2s, s² = ‖ε‖_F²/P, is what a Wigner matrix with ε's mean
    entry variance would show (Theorem 3); Theorem 4 assumes it. The measured density is
    :func:`ritz_density` of ε's Ritz values, with a kernel of 1% of the span.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    nodes : array_like
        Ritz values of ε.
    weights : array_like
        Their weights.
    P : int
        Size of ε.
    scale : float
        s > 0, e.g. √(P/𝔟)·σ_ε from Algorithm 1.
    label : str
        Legend label of the measured curve.
    floor : float
        Smallest density drawn, > 0.

    Raises
    ------
    ValueError
        If ``scale`` or ``floor`` is not positive.
    """
    from rmtlr.rmt.laws import semicircle_pdf

    if not (np.isfinite(scale) and scale > 0 and floor > 0):
        raise ValueError(f"scale and floor must be > 0, got {scale!r}, {floor!r}")
    th = np.asarray(nodes, dtype=float)
    lo, hi = min(th.min(), -2 * scale), max(th.max(), 2 * scale)
    h = 0.01 * (hi - lo)
    grid = np.linspace(lo - 4 * h, hi + 4 * h, 1600)
    d = ritz_density(th, weights, P=P, kernel_width=h, grid=grid)
    ax.plot(grid, np.maximum(d.density, floor), color=BATCH_COLOR, label=label)
    ax.plot(grid, np.maximum(semicircle_pdf(grid, scale), floor), color=THEORY_COLOR, ls="--",
            label="semicircle, same $\\|\\varepsilon\\|_F$")
    for x in (th.min(), th.max()):
        ax.axvline(x, color=BATCH_COLOR, lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_ylim(floor, None)
    ax.set(xlabel="eigenvalue of $\\varepsilon$", ylabel="spectral density")
    ax.legend(loc="upper right")


def plot_lr_vs_batch(ax: plt.Axes, series: dict[str, dict], *,
                     slopes: dict[str, float] | None = None,
                     ylabel: str = "learning rate $\\alpha$") -> None:
    """Draw learning rates against B on log-log axes, with optional reference slopes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    series : dict
        {label: {"B": ..., "lr": ..., optional "lo"/"hi" (a shaded range), "color",
        "ls", "marker"}}; a series with a marker is drawn as points joined by a thin line.
    slopes : dict, optional
        {label: exponent k}: grey guide lines ∝ B^k through the first series' first point.
    ylabel : str
        Label of the y axis.

    Raises
    ------
    ValueError
        If ``series`` is empty or a series' arrays differ in length.
    """
    if not series:
        raise ValueError("series must hold at least one curve")
    first = None
    for (label, s), color in zip(series.items(), colors()):
        B, lr = np.asarray(s["B"], dtype=float), np.asarray(s["lr"], dtype=float)
        if B.shape != lr.shape:
            raise ValueError(f"series {label!r}: B and lr differ in length")
        c = s.get("color", color)
        if "lo" in s and "hi" in s:
            ax.fill_between(B, s["lo"], s["hi"], color=c, alpha=0.15, lw=0)
        ax.plot(B, lr, color=c, ls=s.get("ls", "-"), marker=s.get("marker"),
                lw=1.0 if s.get("marker") else 1.8, label=label)
        first = first or (B[0], lr[0], B)
    for (label, k), ls in zip((slopes or {}).items(), (":", "-.", (0, (1, 3)))):
        b0, y0, B = first
        ax.plot(B, y0 * (B / b0) ** k, color="0.55", lw=0.9, ls=ls, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="batch size $B$", ylabel=ylabel)
