"""The shared figure style."""

import itertools

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from rmtlr import plotting


def test_style_sets_palette_and_labels():
    plotting.use_style()
    cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    assert cycle[:2] == [plotting.PALETTE["blue"], plotting.PALETTE["orange"]]
    assert matplotlib.rcParams["axes.facecolor"] == "white"


def test_stamp_sits_below_the_axes_and_inside_the_saved_image(tmp_path):
    plotting.use_style()
    fig, ax = plotting.subplots()
    ax.plot([0, 1], [0, 1])
    text = plotting.stamp(ax, "quick", "VGG-16 at 1/8 width")
    assert text.get_text() == "profile: quick | VGG-16 at 1/8 width" and text in fig.texts
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box, axes_box = text.get_window_extent(renderer), ax.get_tightbbox(renderer)
    assert box.y1 <= axes_box.y0 + 1e-6  # entirely below everything the axes draw
    fig.savefig(tmp_path / "f.png")  # bbox_inches="tight" keeps the stamp in the image
    plt.close(fig)


def test_subplots_fit_the_page_and_refuse_unreadable_grids():
    fig, axes = plotting.subplots(2, 2)
    assert fig.get_figwidth() == plotting.PAGE_WIDTH and axes.shape == (2, 2)
    plt.close(fig)
    with pytest.raises(ValueError, match="ncols must be 1 or 2"):
        plotting.subplots(3)


# Machado, Oliveira & Fernandes (2009) simulation matrices of dichromacy (severity 1.0),
# applied to linear RGB.
_DICHROMACY = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}


def _lab(hex_colour, simulate=None):
    """CIELAB (D65) of an sRGB colour, optionally as seen with a dichromacy."""
    c = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    if simulate is not None:
        lin = np.clip(np.asarray(_DICHROMACY[simulate]) @ lin, 0.0, 1.0)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ lin / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _closest_pair(colours, simulate=None):
    """Smallest CIE76 colour difference ΔE between two colours of the list."""
    labs = [_lab(c, simulate) for c in colours]
    return min(np.linalg.norm(a - b) for a, b in itertools.combinations(labs, 2))


def test_palette_stays_distinguishable_under_colour_blindness():
    # Before, this test compared the palette with the constants it is defined from, so it
    # could not fail. Now: every two colours of the cycle stay ≥ 15 CIE76 units apart (a
    # just-noticeable difference is ≈ 2.3) as seen by protanopes, deuteranopes and
    # tritanopes (the Okabe–Ito palette: ≥ 16), and with normal vision.
    colours = list(plotting.PALETTE.values())
    for simulate in (None, *_DICHROMACY):
        assert _closest_pair(colours, simulate) >= 15, simulate
    # The check has teeth: matplotlib's default tab10 cycle puts orange and green 4.6
    # units apart for a protanope, and red and green 7.3 apart for a deuteranope.
    tab10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
             "#7f7f7f", "#bcbd22", "#17becf"]
    assert _closest_pair(tab10, "protanopia") < 15 and _closest_pair(tab10, "deuteranopia") < 15


def test_role_colours_come_from_the_palette():
    roles = [plotting.THEORY_COLOR, plotting.SGD_COLOR, plotting.ADAM_COLOR,
             plotting.FULL_COLOR, plotting.BATCH_COLOR]
    assert set(roles) <= set(plotting.PALETTE.values())
    assert plotting.SGD_COLOR != plotting.ADAM_COLOR
    assert plotting.FULL_COLOR != plotting.BATCH_COLOR


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
