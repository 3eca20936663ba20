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


# --- chapters 1-5 ---


def test_theory_vs_simulation_draws_lines_markers_and_error_bars():
    fig, ax = plotting.subplots()
    x = np.linspace(1, 10, 5)
    plotting.theory_vs_simulation(
        ax, {"law": (x, x**2), "other law": (x, x, {"color": "red", "ls": ":"})},
        {"sim": (x, x**2 + 1, {"yerr": np.ones(5)}), "_hidden": (x, x)},
        xscale="log", yscale="log", xlabel="B", ylabel="λ")
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert lines["law"].get_color() == plotting.THEORY_COLOR and lines["law"].get_linestyle() == "-"
    assert lines["other law"].get_color() == "red" and lines["other law"].get_linestyle() == ":"
    np.testing.assert_allclose(lines["law"].get_ydata(), x**2)
    assert lines["_hidden"].get_marker() == "o" and lines["_hidden"].get_linestyle() == "None"
    assert len(ax.containers) == 1  # the error bars of "sim"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["law", "other law", "sim"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "B"
    plt.close(fig)


def test_theory_vs_simulation_refuses_malformed_series():
    fig, ax = plotting.subplots()
    with pytest.raises(TypeError, match=r"theory\['a'\] must be a tuple"):
        plotting.theory_vs_simulation(ax, {"a": [1, 2]})
    with pytest.raises(ValueError, match="same shape"):
        plotting.theory_vs_simulation(ax, simulation={"a": (np.ones(3), np.ones(4))})
    with pytest.raises(ValueError, match="xscale"):
        plotting.theory_vs_simulation(ax, xscale="symlog")
    plt.close(fig)


def test_histogram_vs_laws_is_a_density_under_the_law():
    rng = np.random.default_rng(0)
    samples = rng.standard_normal(2000)
    x = np.linspace(-4, 4, 201)
    fig, ax = plotting.subplots()
    plotting.histogram_vs_laws(ax, samples, {"normal": (x, np.exp(-x**2 / 2) / np.sqrt(2 * np.pi))},
                               label="draws", bins=40)
    heights = np.array([p.get_height() for p in ax.patches])
    widths = np.array([p.get_width() for p in ax.patches])
    assert np.sum(heights * widths) == pytest.approx(1.0)  # unit area
    assert ax.get_ylabel() == "density" and ax.get_lines()[0].get_label() == "normal"
    # weights: the bars are the weighted counts per bin, not renormalised
    fig2, ax2 = plotting.subplots()
    plotting.histogram_vs_laws(ax2, samples, weights=np.full(2000, 1e-3), bins=10, legend=None)
    assert np.sum([p.get_height() for p in ax2.patches]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="weights"):
        plotting.histogram_vs_laws(ax2, samples, weights=np.ones(3))
    with pytest.raises(ValueError, match="bins"):
        plotting.histogram_vs_laws(ax2, samples, bins=0)
    plt.close(fig)
    plt.close(fig2)


def test_band_and_reference_slope():
    fig, ax = plotting.subplots()
    x = np.array([1.0, 10.0, 100.0])
    plotting.band(ax, x, -1.0, np.sqrt(x))
    poly = ax.collections[0]
    assert poly.get_label() == "noise bulk" and poly.get_zorder() == 0
    ys = poly.get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(10.0) and ys.min() == pytest.approx(-1.0)
    plotting.reference_slope(ax, x, x0=10.0, y0=2.0, exponent=-0.5, label="slope")
    np.testing.assert_allclose(ax.get_lines()[-1].get_ydata(), 2.0 * (x / 10.0) ** -0.5)
    with pytest.raises(ValueError, match="> 0"):
        plotting.reference_slope(ax, [0.0, 1.0], x0=1.0, y0=1.0, exponent=1.0)
    plt.close(fig)
