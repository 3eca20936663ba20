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


# --- chapter 11 ---

def test_sharpness_panel_draws_three_curves_and_the_stability_line():
    fig, ax = plotting.subplots()
    lines = plotting.sharpness_panel(ax, [0, 10, 20], lam1=[1, 5, 8], lam1_batch=[2, 9, 12],
                                     batch_sharpness=[0.5, 4, 10], lr=0.2, batch_size=32)
    assert len(lines) == 4 and lines[0].get_ydata()[0] == pytest.approx(10.0)  # 2/η
    assert [ln.get_label() for ln in lines[1:]] == [
        "full-data λ₁", "batch λ₁ (mean over batches)", "batch sharpness"]
    assert ax.get_yscale() == "log" and ax.get_title() == "B = 32, η = 0.2"
    np.testing.assert_array_equal(lines[2].get_ydata(), [2, 9, 12])
    with pytest.raises(ValueError, match="lr must be"):
        plotting.sharpness_panel(ax, [0], lam1=[1], lam1_batch=[1], batch_sharpness=[1], lr=0)
    with pytest.raises(ValueError, match="has 2 values but the x-axis has 3"):
        plotting.sharpness_panel(ax, [0, 1, 2], lam1=[1, 2], lam1_batch=[1, 2, 3],
                                 batch_sharpness=[1, 2, 3], lr=0.1)
    plt.close(fig)


def test_thresholds_panel_marks_the_exact_threshold():
    fig, ax = plotting.subplots()
    lines = plotting.thresholds_panel(ax, [1, 4, 16], {"exact η*": [0.1, 0.3, 0.5],
                                                       "2/λ₁": [0.6, 0.6, 0.6]},
                                      exact="exact η*")
    assert lines[0].get_color() == plotting.THEORY_COLOR and lines[0].get_linewidth() > 2
    assert lines[1].get_color() != plotting.THEORY_COLOR
    assert ax.get_xscale() == ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="exact must be one of"):
        plotting.thresholds_panel(ax, [1], {"a": [1]}, exact="b")
    with pytest.raises(ValueError, match="at least one"):
        plotting.thresholds_panel(ax, [1], {})
    plt.close(fig)


def test_lr_grid_panel_colours_cells_and_leaves_diverged_ones_grey():
    fig, ax = plotting.subplots()
    V = np.array([[1.0, 0.8, 0.9], [0.5, 0.4, np.nan]])
    mesh = plotting.lr_grid_panel(ax, [8, 32, 128], [1e-3, 2e-3], V, best=[2e-3, 2e-3, 1e-3],
                                  rule={"√ rule": [1e-3, 2e-3, 4e-3]})
    data = mesh.get_array()
    assert data.shape == (2, 3) or data.size == 6
    assert np.ma.count_masked(data) == 1  # the diverged cell
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert labels == ["best rate", "√ rule"]
    assert len(fig.axes) == 2  # the colour bar
    with pytest.raises(ValueError, match="shape"):
        plotting.lr_grid_panel(ax, [8, 32], [1e-3, 2e-3], V)
    with pytest.raises(ValueError, match="no positive finite"):
        plotting.lr_grid_panel(ax, [8, 32, 128], [1e-3, 2e-3], V * np.nan)
    plt.close(fig)


def test_series_panel_draws_one_line_per_series():
    fig, ax = plotting.subplots()
    lines = plotting.series_panel(ax, [1, 2, 3], {"a": [1, 2, 3], "b": [3, np.nan, 1]},
                                  xlabel="epoch", ylabel="B")
    assert [ln.get_label() for ln in lines] == ["a", "b"]
    assert lines[0].get_color() != lines[1].get_color() and ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="at least one"):
        plotting.series_panel(ax, [1], {}, xlabel="x", ylabel="y")
    lines = plotting.series_panel(ax, [1, 2], {"a": [1, 2], "b": [2, 1]}, xlabel="x",
                                  ylabel="y", line_colors=["#000000", "#0072B2"])
    assert [ln.get_color() for ln in lines] == ["#000000", "#0072B2"]
    with pytest.raises(ValueError, match="line_colors has 1 entries for 2 series"):
        plotting.series_panel(ax, [1, 2], {"a": [1, 2], "b": [2, 1]}, xlabel="x",
                              ylabel="y", line_colors=["#000000"])
    plt.close(fig)
