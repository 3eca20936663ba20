"""Figures of chapter 8."""


import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from rmtlr import plotting

# --- chapter 8 ---

def _rows():
    rows = []
    for epoch, lam in ((0, 1.0), (5, 4.0)):
        for curv in ("hessian", "ggn"):
            for B, shift in ((16, 8.0), (128, 1.0)):
                rows.append({"epoch": epoch, "curvature": curv, "B": B, "lam1_full": lam,
                             "lam1_batch": lam + shift, "lam1_batch_min": lam + 0.8 * shift,
                             "lam1_batch_max": lam + 1.2 * shift, "theorem4": lam * 1.01,
                             "wishart": None if epoch == 0 and B == 16 else lam + shift})
    return rows


def test_slq_curve_integrates_to_one_and_checks_its_input():
    t = np.linspace(-10, 20, 6001)
    nodes, weights = [[0.0, 5.0, 10.0]], [[0.5, 0.3, 0.2]]
    rho = plotting.slq_curve(nodes, weights, t, kernel_width=0.3)
    assert rho.sum() * (t[1] - t[0]) == pytest.approx(1.0, abs=1e-9)
    # The mass near each node is its weight.
    near = np.abs(t - 5.0) < 2.0
    assert rho[near].sum() * (t[1] - t[0]) == pytest.approx(0.3, abs=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        plotting.slq_curve([0.0, 1.0], [1.0], t, kernel_width=0.3)
    with pytest.raises(ValueError, match="kernel_width"):
        plotting.slq_curve([0.0], [1.0], t, kernel_width=0.0)


def test_spectral_densities_mark_each_curves_top_ritz_value():
    fig, ax = plotting.subplots()
    grid = plotting.plot_spectral_densities(ax, {
        "full": {"nodes": [[0.0, 2.0]], "weights": [[0.9, 0.1]]},
        "batch": {"nodes": [[0.0, 9.0]], "weights": [[0.99, 0.01]]}})
    assert grid[0] < 0.0 and grid[-1] > 9.0
    markers = [ln for ln in ax.get_lines() if ln.get_marker() == "v"]
    assert sorted(float(m.get_xdata()[0]) for m in markers) == [2.0, 9.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["full", "batch"]
    with pytest.raises(ValueError, match="at least one"):
        plotting.plot_spectral_densities(ax, {})
    plt.close(fig)


def test_lam1_across_training_draws_measurement_and_both_models():
    fig, ax = plotting.subplots()
    plotting.plot_lam1_across_training(ax, _rows(), curvature="ggn")
    labels = ax.get_legend_handles_labels()[1]
    assert sorted(labels) == sorted(["full data", "batch B=16", "Theorem 4, B=16",
                                     "spiked Wishart, B=16", "batch B=128", "Theorem 4, B=128",
                                     "spiked Wishart, B=128"])
    wish16 = next(ln for ln in ax.get_lines() if ln.get_label() == "spiked Wishart, B=16")
    assert np.isnan(wish16.get_ydata()[0]) and wish16.get_ydata()[1] == 12.0  # None: no point
    with pytest.raises(ValueError, match="no row for curvature"):
        plotting.plot_lam1_across_training(ax, _rows(), curvature="fisher")
    plt.close(fig)


def test_noise_spectrum_draws_the_semicircle_of_the_given_radius():
    fig, ax = plotting.subplots()
    plotting.plot_record_noise_spectrum(ax, {"nodes": [[-0.1, 0.0, 6.0]], "weights": [[0.2, 0.79, 0.01]]},
                                 semicircle_radius=0.5)
    semi = next(ln for ln in ax.get_lines() if ln.get_label().startswith("Theorem 4"))
    x, y = semi.get_xdata(), semi.get_ydata()
    assert x.min() == -0.5 and x.max() == 0.5
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=1e-3)  # a probability density
    assert ax.get_xlim()[1] > 6.0
    with pytest.raises(ValueError, match="semicircle_radius"):
        plotting.plot_record_noise_spectrum(ax, {"nodes": [[0.0]], "weights": [[1.0]]},
                                     semicircle_radius=-1.0)
    plt.close(fig)


def test_prediction_errors_plot_ratios_of_both_models():
    fig, ax = plotting.subplots()
    rows = _rows()
    plotting.plot_prediction_errors(ax, rows)
    wigner, wishart = ax.collections
    meas = np.array([r["lam1_batch"] for r in rows])
    np.testing.assert_allclose(wigner.get_offsets()[:, 1], [r["theorem4"] for r in rows] / meas)
    ratios = np.asarray(wishart.get_offsets()[:, 1], float)
    assert np.isnan(ratios).sum() == 2 and np.allclose(ratios[~np.isnan(ratios)], 1.0)
    with pytest.raises(ValueError, match="rows must not be empty"):
        plotting.plot_prediction_errors(ax, [])
    plt.close(fig)
