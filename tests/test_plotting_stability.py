"""Figures of chapter 11."""


import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from rmtlr import plotting

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
