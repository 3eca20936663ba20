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


# --- chapter 9 ---

def _points():
    from rmtlr.sweeps import SweepPoint
    ok = SweepPoint(16, 0.01, 100, (0, 1), (True, True), (False, False), (0.40, 0.44), 1.0)
    bad = SweepPoint(64, 0.04, 25, (0, 1), (False, False), (True, False), (None, 0.11), 1.0)
    return {"SGD, linear": [ok, bad]}


def test_batch_size_axis_ticks_each_batch_size_on_a_log2_scale():
    fig, ax = plotting.subplots()
    plotting.batch_size_axis(ax, [512, 16, 64, 16])
    assert ax.get_xscale() == "log" and list(ax.get_xticks()) == [16, 64, 512]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "64", "512"]
    with pytest.raises(ValueError, match="batch_sizes"):
        plotting.batch_size_axis(ax, [])
    with pytest.raises(ValueError, match="batch_sizes"):
        plotting.batch_size_axis(ax, [0, 16])
    plt.close(fig)


def test_sweep_accuracy_marks_diverged_runs_and_the_threshold():
    fig, ax = plotting.subplots()
    plotting.sweep_accuracy(ax, _points(), chance=0.1, threshold=0.15)
    main = next(l for l in ax.lines if l.get_label() == "SGD, linear")
    np.testing.assert_allclose(main.get_ydata(), [0.42, 0.11])  # diverged seed left out
    crosses = [l for l in ax.lines if l.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xydata()[0]) == [64, 0.1]
    levels = sorted(l.get_ydata()[0] for l in ax.lines if l.get_linestyle() in ("--", ":"))
    assert levels == [0.1, 0.15]
    with pytest.raises(ValueError, match="chance"):
        plotting.sweep_accuracy(ax, _points(), chance=0.2, threshold=0.15)
    with pytest.raises(ValueError, match="at least one rule"):
        plotting.sweep_accuracy(ax, {}, chance=0.1, threshold=0.15)
    plt.close(fig)


def test_rates_against_batch_size_fills_only_stable_points_and_draws_predictions():
    fig, ax = plotting.subplots()
    plotting.rates_against_batch_size(ax, _points(), {"Theorem 4": ([16, 64], [0.1, 0.2])})
    marks = [l for l in ax.lines if l.get_marker() == "o"]
    fills = {tuple(l.get_xydata()[0]): l.get_markerfacecolor() for l in marks}
    assert fills[(16, 0.01)] != "white" and fills[(64, 0.04)] == "white"
    theory = next(l for l in ax.lines if l.get_label() == "Theorem 4")
    assert list(theory.get_ydata()) == [0.1, 0.2]
    assert ax.get_yscale() == "log"
    plt.close(fig)


def test_loss_against_updates_uses_window_positions_and_marks_divergence():
    fig, ax = plotting.subplots()
    runs = {"ok": {"step_loss": [2.3, 1.9], "step_loss_at": [50, 100], "outcome": "ok"},
            "blown": {"step_loss": [2.3, 40.0, None], "outcome": "diverged"}}
    plotting.loss_against_updates(ax, runs)
    ok = next(l for l in ax.lines if l.get_label() == "ok")
    assert list(ok.get_xdata()) == [50, 100]
    cross = next(l for l in ax.lines if l.get_marker() == "x")
    assert list(cross.get_xydata()[0]) == [2, 40.0]  # the last finite loss
    with pytest.raises(ValueError, match="at least one"):
        plotting.loss_against_updates(ax, {})
    plt.close(fig)


def test_lam1_against_batch_size_draws_means_models_and_full_level():
    fig, ax = plotting.subplots()
    plotting.lam1_against_batch_size(ax, ([16, 64], [[3.0, 5.0], [2.0]]),
                                     {"GGN model": ([16, 64], [4.2, 2.1])}, full=1.5)
    mean = next(l for l in ax.lines if l.get_label() == "measured, batch")
    assert list(mean.get_ydata()) == [4.0, 2.0]
    assert any(l.get_label() == "GGN model" for l in ax.lines)
    assert any(list(l.get_ydata()) == [1.5, 1.5] for l in ax.lines)
    with pytest.raises(ValueError, match="one list of values per B"):
        plotting.lam1_against_batch_size(ax, ([16, 64], [[3.0]]), {}, full=1.0)
    plt.close(fig)
