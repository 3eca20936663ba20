"""Figures of chapters 6-7."""


import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from rmtlr import plotting

# --- chapters 6-7 ---


def test_ritz_density_equals_the_slq_density_it_was_stored_from():
    import torch

    from rmtlr.curvature import slq_density

    rng = np.random.default_rng(0)
    A = rng.standard_normal((60, 60))
    A = torch.tensor((A + A.T) / 2)
    d = slq_density(A, 20, 3, seed=0)
    r = plotting.ritz_density(d.nodes, d.weights, P=60, kernel_width=d.kernel_width, grid=d.grid)
    np.testing.assert_allclose(r.density, d.density, rtol=1e-12, atol=1e-15)
    assert r.bulk_edge == pytest.approx(d.bulk_edge)
    assert r.bulk_edge_lower == pytest.approx(d.bulk_edge_lower)
    one = plotting.ritz_density(d.nodes[0], d.weights[0], P=60)  # one stored run, 1-D
    assert float(np.sum(one.density) * (one.grid[1] - one.grid[0])) == pytest.approx(1, abs=1e-3)
    with pytest.raises(ValueError, match="same shape"):
        plotting.ritz_density([1.0, 2.0], [1.0], P=60)
    with pytest.raises(ValueError, match="P must be"):
        plotting.ritz_density([1.0], [1.0], P=0)


def _rows(network="net", curvature="hessian"):
    return [{"network": network, "curvature": curvature, "B": B, "measured": 2.0 / B ** 0.5 + 1,
             "sd": 0.1, "lam1_full": 1.0, "theorem4": 1.01, "wishart": 1 + 1.5 / B,
             "top_direction": 1 + 1.0 / B} for B in (8, 32, 128)]


def test_plot_batch_lam1_draws_measurement_models_and_full_value():
    fig, ax = plotting.subplots()
    plotting.plot_batch_lam1(ax, _rows(), models=("theorem4", "wishart", "top_direction"))
    labels = [t.get_text() for t in ax.legend().get_texts()]
    assert labels[0].startswith("Theorem 4") and "measured (mean ± sd)" in labels
    assert ax.get_xscale() == "log" and len(ax.lines) >= 4
    with pytest.raises(ValueError, match="one network and curvature"):
        plotting.plot_batch_lam1(ax, _rows() + _rows(curvature="ggn"))
    with pytest.raises(ValueError, match="unknown models"):
        plotting.plot_batch_lam1(ax, _rows(), models=("bogus",))
    plt.close(fig)


def test_plot_noise_spectrum_puts_the_semicircle_of_the_given_scale():
    fig, ax = plotting.subplots()
    nodes, weights = np.array([-1.0, 0.0, 3.0]), np.array([0.3, 0.4, 0.3])
    plotting.plot_noise_spectrum(ax, nodes, weights, P=100, scale=0.5)
    semi = next(ln for ln in ax.lines if ln.get_label().startswith("semicircle"))
    x, y = semi.get_data()
    support = x[y > 1e-4]
    assert support.min() == pytest.approx(-1.0, abs=0.02) and support.max() == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError, match="scale"):
        plotting.plot_noise_spectrum(ax, nodes, weights, P=100, scale=0.0)
    plt.close(fig)


def test_plot_lr_vs_batch_draws_series_and_slopes_through_the_first_point():
    fig, ax = plotting.subplots()
    B = np.array([8.0, 64.0, 512.0])
    plotting.plot_lr_vs_batch(ax, {"SGD": {"B": B, "lr": 0.01 * B, "marker": "o",
                                           "lo": 0.008 * B, "hi": 0.012 * B},
                                   "2/λ": {"B": B, "lr": np.ones(3)}}, slopes={"∝ B": 1.0})
    guide = next(ln for ln in ax.lines if ln.get_label() == "∝ B")
    np.testing.assert_allclose(guide.get_ydata(), 0.01 * B)
    with pytest.raises(ValueError, match="differ in length"):
        plotting.plot_lr_vs_batch(ax, {"x": {"B": B, "lr": B[:2]}})
    with pytest.raises(ValueError, match="at least one"):
        plotting.plot_lr_vs_batch(ax, {})
    plt.close(fig)


def test_plot_ritz_densities_marks_each_top_ritz_value():
    fig, ax = plotting.subplots()
    curves = {"full": {"nodes": [0.0, 1.0], "weights": [0.9, 0.1]},
              "batch": {"nodes": [0.0, 3.0], "weights": [0.8, 0.2]}}
    grid = plotting.plot_ritz_densities(ax, curves, P=50)
    markers = [ln.get_xdata()[0] for ln in ax.lines if ln.get_marker() == "v"]
    assert markers == [1.0, 3.0] and grid[0] < 0 and grid[-1] > 3
    with pytest.raises(ValueError, match="at least one"):
        plotting.plot_ritz_densities(ax, {}, P=50)
    plt.close(fig)
