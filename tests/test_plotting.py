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
    plotting.plot_noise_spectrum(ax, {"nodes": [[-0.1, 0.0, 6.0]], "weights": [[0.2, 0.79, 0.01]]},
                                 semicircle_radius=0.5)
    semi = next(ln for ln in ax.get_lines() if ln.get_label().startswith("Theorem 4"))
    x, y = semi.get_xdata(), semi.get_ydata()
    assert x.min() == -0.5 and x.max() == 0.5
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=1e-3)  # a probability density
    assert ax.get_xlim()[1] > 6.0
    with pytest.raises(ValueError, match="semicircle_radius"):
        plotting.plot_noise_spectrum(ax, {"nodes": [[0.0]], "weights": [[1.0]]},
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
