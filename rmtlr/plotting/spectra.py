"""Figures of chapter 8.

SLQ curves from stored Ritz nodes, full-data against batch densities, lambda_1 across
training with both noise models, epsilon against Theorem 4's semicircle, and prediction
ratios.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from rmtlr.plotting.style import (
    BATCH_COLOR,
    PALETTE,
    THEORY_COLOR,
)

#: Colours of the two noise models, used wherever their predictions appear.
THEOREM4_COLOR = PALETTE["purple"]
WISHART_COLOR = PALETTE["green"]


def slq_curve(nodes: np.ndarray | list, weights: np.ndarray | list, grid: np.ndarray, *,
              kernel_width: float) -> np.ndarray:
    r"""Return the Gaussian-smoothed SLQ density of stored Ritz nodes and weights on a grid.

    ρ(t) = (1/n_v) Σ_v Σ_k τ_vk exp(−(t − θ_vk)²/2s²)/(√(2π) s), the estimate of
    :func:`rmtlr.curvature.slq_density`, redrawn from what a results file keeps.

    Parameters
    ----------
    nodes : array_like
        Ritz values θ, shape (n_v, m) or (m,).
    weights : array_like
        Ritz weights τ, the same shape; each row sums to 1.
    grid : numpy.ndarray
        Points t.
    kernel_width : float
        s > 0.

    Returns
    -------
    numpy.ndarray
        ρ on ``grid``; it integrates to 1 over a grid that covers the nodes.

    Raises
    ------
    ValueError
        If the shapes differ or ``kernel_width`` is not positive.

    Examples
    --------
    >>> t = np.linspace(-5, 5, 2001)
    >>> rho = slq_curve([0.0], [1.0], t, kernel_width=0.5)
    >>> round(float(rho.sum() * (t[1] - t[0])), 6)
    1.0
    """
    th, w = np.atleast_2d(np.asarray(nodes, float)), np.atleast_2d(np.asarray(weights, float))
    if th.shape != w.shape:
        raise ValueError(f"nodes and weights must have the same shape, got {th.shape} and "
                         f"{w.shape}")
    if not (np.isfinite(kernel_width) and kernel_width > 0):
        raise ValueError(f"kernel_width must be finite and > 0, got {kernel_width!r}")
    t = np.asarray(grid, float)[:, None, None]
    k = np.exp(-0.5 * ((t - th[None]) / kernel_width) ** 2) / (np.sqrt(2 * np.pi) * kernel_width)
    return (k * w[None]).sum(axis=(1, 2)) / th.shape[0]


def plot_spectral_densities(ax: plt.Axes, densities: dict[str, dict], *,
                            colors: dict[str, str] | None = None, floor: float = 1e-7,
                            kernel_fraction: float = 0.01) -> np.ndarray:
    """Draw SLQ densities (full data and batches) on one log-density axis.

    The analogue of the paper's Figs. 6–7: a common grid from the smallest to the largest
    Ritz value of all curves, a Gaussian kernel of ``kernel_fraction`` of that span, and a
    marker at each curve's largest Ritz value (its λ_1).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    densities : dict
        {label: {"nodes": ..., "weights": ...}} as a spectra record stores them.
    colors : dict, optional
        {label: colour}; default the palette in order.
    floor : float
        Smallest density drawn (the log axis starts there).
    kernel_fraction : float
        Kernel width as a fraction of the grid's span, in (0, 1).

    Returns
    -------
    numpy.ndarray
        The grid.

    Raises
    ------
    ValueError
        If ``densities`` is empty or ``kernel_fraction`` is out of range.
    """
    if not densities:
        raise ValueError("densities must hold at least one curve")
    if not 0 < kernel_fraction < 1:
        raise ValueError(f"kernel_fraction must be in (0, 1), got {kernel_fraction!r}")
    lo = min(float(np.min(d["nodes"])) for d in densities.values())
    hi = max(float(np.max(d["nodes"])) for d in densities.values())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    width = kernel_fraction * span
    grid = np.linspace(lo - 3 * width, hi + 3 * width, 1200)
    cycle = colors or dict(zip(densities, PALETTE.values()))
    for label, d in densities.items():
        rho = slq_curve(d["nodes"], d["weights"], grid, kernel_width=width)
        ax.semilogy(grid, np.maximum(rho, floor), color=cycle[label], label=label)
        top = float(np.max(d["nodes"]))
        ax.plot([top], [floor * 3], marker="v", color=cycle[label], ms=7, ls="none")
    ax.set_ylim(floor, None)
    ax.set(xlabel="eigenvalue λ", ylabel="spectral density")
    ax.legend(loc="upper right")
    return grid


def plot_lam1_across_training(ax: plt.Axes, rows: list[dict], *, curvature: str,
                              batch_sizes: list[int] | None = None) -> None:
    """Draw λ_1 against the epoch: full data, batches, and both models' predictions.

    The analogue of the paper's Fig. 9. For each batch size B, the mean batch λ_1 (marker,
    with the range over the batches), Theorem 4's prediction (dashed, from σ_ε of
    Algorithm 1) and the spiked-Wishart prediction (dotted, from tr(A)/P); the full-data
    λ_1 as a black line.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    rows : list of dict
        Rows of :func:`rmtlr.experiments.spectra_table` for one network.
    curvature : str
        ``"hessian"`` or ``"ggn"``.
    batch_sizes : list of int, optional
        Which B to draw (default all in ``rows``).

    Raises
    ------
    ValueError
        If ``rows`` hold no row of ``curvature``.
    """
    mine = [r for r in rows if r["curvature"] == curvature]
    if not mine:
        raise ValueError(f"rows hold no row for curvature {curvature!r}")
    sizes = batch_sizes or sorted({r["B"] for r in mine})
    full = sorted({(r["epoch"], r["lam1_full"]) for r in mine})
    ax.plot(*zip(*full), color=THEORY_COLOR, marker="s", ms=4, label="full data")
    markers = iter("o^Dv")
    for B in sizes:
        rb = sorted((r for r in mine if r["B"] == B), key=lambda r: r["epoch"])
        ep = np.array([r["epoch"] for r in rb], float)
        mean = np.array([r["lam1_batch"] for r in rb])
        err = [mean - [r["lam1_batch_min"] for r in rb], [r["lam1_batch_max"] for r in rb] - mean]
        mk = next(markers, "o")
        ax.errorbar(ep, mean, yerr=err, color=BATCH_COLOR, marker=mk, ls="none", capsize=3,
                    label=f"batch B={B}")
        ax.plot(ep, [r["theorem4"] for r in rb], ls="--", marker=mk, mfc="none",
                color=THEOREM4_COLOR, label=f"Theorem 4, B={B}")
        wish = [np.nan if r["wishart"] is None else r["wishart"] for r in rb]
        ax.plot(ep, wish, ls=":", marker=mk, mfc="none", color=WISHART_COLOR,
                label=f"spiked Wishart, B={B}")
    ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="top eigenvalue λ₁")


def plot_record_noise_spectrum(ax: plt.Axes, noise: dict, *, semicircle_radius: float,
                        label: str = "ε = batch − full", floor: float = 1e-7) -> None:
    """Draw the SLQ spectrum of the noise matrix ε beside Theorem 4's semicircle.

    Theorem 4 models ε as a Wigner matrix whose spectrum is a semicircle of radius
    2√(P/𝔟)σ_ε about 0; a low-rank, one-sided ε instead puts almost all its mass near 0
    and a few eigenvalues far beyond that radius.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    noise : dict
        The ``noise`` entry of a spectra record (``nodes``, ``weights``).
    semicircle_radius : float
        R = 2√(P/𝔟)σ_ε of Theorem 4, > 0.
    label : str
        Legend label of the measured spectrum.
    floor : float
        Smallest density drawn.

    Raises
    ------
    ValueError
        If ``semicircle_radius`` is not positive.
    """
    if not (np.isfinite(semicircle_radius) and semicircle_radius > 0):
        raise ValueError(f"semicircle_radius must be finite and > 0, got {semicircle_radius!r}")
    grid = plot_spectral_densities(ax, {label: noise}, colors={label: BATCH_COLOR},
                                   floor=floor, kernel_fraction=0.005)
    R = semicircle_radius
    x = np.linspace(-R, R, 401)
    wigner = 2 / (np.pi * R**2) * np.sqrt(np.maximum(R**2 - x**2, 0))
    ax.semilogy(x, np.maximum(wigner, floor), color=THEOREM4_COLOR, ls="--",
                label=f"Theorem 4 semicircle, radius {R:.3g}")
    for s in (-R, R):
        ax.axvline(s, color=THEOREM4_COLOR, lw=0.8, ls=":")
    ax.set_xlim(min(grid[0], -1.2 * R), max(grid[-1], 1.2 * R))
    ax.legend(loc="upper right")


def plot_prediction_errors(ax: plt.Axes, rows: list[dict]) -> None:
    """Draw predicted / measured batch λ_1 for both noise models, every row one point.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    rows : list of dict
        Rows of :func:`rmtlr.experiments.spectra_table` (any networks).

    Raises
    ------
    ValueError
        If ``rows`` is empty.
    """
    if not rows:
        raise ValueError("rows must not be empty")
    meas = np.array([r["lam1_batch"] for r in rows])
    for key, colour, name, mk in (("theorem4", THEOREM4_COLOR, "Theorem 4 (Wigner)", "x"),
                                  ("wishart", WISHART_COLOR, "spiked Wishart", "o")):
        pred = np.array([np.nan if r[key] is None else r[key] for r in rows])
        ax.scatter(meas, pred / meas, color=colour, marker=mk, label=name,
                   facecolors=colour if mk == "x" else "none")
    ax.axhline(1.0, color=THEORY_COLOR, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="measured batch λ₁", ylabel="predicted / measured")
    ax.legend()
