"""The shared figure style."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from rmtlr import plotting


def test_style_sets_palette_and_labels():
    plotting.use_style()
    cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    assert cycle[:2] == [plotting.PALETTE["blue"], plotting.PALETTE["orange"]]
    assert matplotlib.rcParams["axes.facecolor"] == "white"


def test_stamp_writes_profile():
    fig, ax = plt.subplots()
    plotting.stamp(ax, "quick", "offline stand-in data")
    assert ax.texts[-1].get_text() == "profile: quick | offline stand-in data"
    plt.close(fig)


def test_palette_is_colour_blind_safe_okabe_ito():
    assert set(plotting.PALETTE.values()) >= {"#0072B2", "#E69F00", "#009E73", "#D55E00"}
