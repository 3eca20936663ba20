"""The shared figure style."""

import matplotlib

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


def test_palette_is_colour_blind_safe_okabe_ito():
    assert set(plotting.PALETTE.values()) >= {"#0072B2", "#E69F00", "#009E73", "#D55E00"}
