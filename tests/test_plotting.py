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


# --- chapter 10 ---

def test_plot_convergence_normalises_marks_divergence_and_draws_the_rate():
    fig, ax = plotting.subplots()
    good = 3.0 * 0.5 ** np.arange(20)
    bad = np.concatenate([2.0 ** np.arange(10), [np.inf, np.nan]])
    plotting.plot_convergence(ax, {"good": good, "bad": bad}, rates={"good": 0.5})
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), good / 3.0)
    ref = lines[1]  # the dashed reference r^t through the middle of the trace
    assert ref.get_linestyle() == "--"
    np.testing.assert_allclose(ref.get_ydata(), good / 3.0, rtol=1e-12)
    assert len(lines[2].get_xdata()) == 10 and lines[3].get_marker() == "x"
    with pytest.raises(ValueError, match="traces must hold at least one curve"):
        plotting.plot_convergence(ax, {})
    with pytest.raises(ValueError, match="must start with a positive finite value"):
        plotting.plot_convergence(ax, {"zero": [0.0, 1.0]})
    with pytest.raises(ValueError, match=r"rates\['good'\] must be in \(0, 1\]"):
        plotting.plot_convergence(ax, {"good": good}, rates={"good": 1.5})
    plt.close(fig)


def test_plot_rate_vs_kappa_draws_steps_per_e_fold():
    fig, ax = plotting.subplots()
    k = np.array([10.0, 100.0, 1000.0])
    r = (k - 1) / (k + 1)
    plotting.plot_rate_vs_kappa(ax, k, theory={"GD": r}, measured={"GD": r})
    theory, measured = ax.get_lines()
    np.testing.assert_allclose(theory.get_ydata(), -1 / np.log(r))
    # (κ−1)/(κ+1) = 1 − 2/(κ+1): about κ/2 steps per e-fold for large κ.
    assert theory.get_ydata()[-1] == pytest.approx(500, rel=1e-3)
    assert measured.get_color() == theory.get_color() and measured.get_marker() == "o"
    with pytest.raises(ValueError, match="kappas must be"):
        plotting.plot_rate_vs_kappa(ax, [0.5], theory={"GD": [0.5]})
    with pytest.raises(ValueError, match="one factor in"):
        plotting.plot_rate_vs_kappa(ax, k, theory={"GD": [0.5, 1.0, 0.5]})
    plt.close(fig)


def test_plot_learner_trajectories_holds_each_value_until_the_next_estimate():
    fig, axes = plotting.subplots(2)
    recs = [{"epoch": 0, "lr": 0.1, "momentum": 0.5}, {"epoch": 3, "failed": "x"},
            {"epoch": 6, "lr": 0.2, "momentum": 0.7}]
    plotting.plot_learner_trajectories(axes, {"a": (recs, 9), "b": (recs[:1], 2)},
                                       total_epochs=9)
    step = axes[0].get_lines()[0]
    assert list(step.get_xdata()) == [0, 6, 9] and list(step.get_ydata()) == [0.1, 0.2, 0.2]
    assert list(axes[1].get_lines()[0].get_ydata()) == [0.5, 0.7, 0.7]
    assert axes[0].get_yscale() == "log"
    # Run b stopped after 2 of 9 epochs: a cross at its end on both panels.
    assert [ln.get_marker() for ln in axes[0].get_lines()][-1] == "x"
    with pytest.raises(ValueError, match="has no estimates"):
        plotting.plot_learner_trajectories(axes, {"c": ([{"epoch": 1, "failed": "x"}], 3)},
                                           total_epochs=3)
    with pytest.raises(ValueError, match="axes must be two axes"):
        plotting.plot_learner_trajectories(axes[:1], {"a": (recs, 9)}, total_epochs=9)
    plt.close(fig)


def test_plot_accuracy_curves_and_cost():
    fig, axes = plotting.subplots(2)
    plotting.plot_accuracy_vs_epoch(axes[0], {"SGD": ([1, 2, 3], [0.2, 0.4, 0.5])})
    assert list(axes[0].get_lines()[0].get_ydata()) == [0.2, 0.4, 0.5]
    plotting.plot_accuracy_vs_cost(axes[1], {"SGD grid": (75.0, 0.6), "learner": (20.0, 0.55)})
    assert [tuple(ln.get_xydata()[0]) for ln in axes[1].get_lines()] == [(75.0, 0.6),
                                                                          (20.0, 0.55)]
    assert axes[1].get_xscale() == "log" and len(axes[1].texts) == 2
    with pytest.raises(ValueError, match="2 epochs but 3 values"):
        plotting.plot_accuracy_vs_epoch(axes[0], {"x": ([1, 2], [0.1, 0.2, 0.3])})
    with pytest.raises(ValueError, match="cost must be positive"):
        plotting.plot_accuracy_vs_cost(axes[1], {"x": (0.0, 0.5)})
    plt.close(fig)
