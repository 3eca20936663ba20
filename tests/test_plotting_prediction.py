"""Figures of chapter 12."""

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from rmtlr import plotting


def test_stability_map_sorts_trials_into_stable_early_and_late():
    fig, ax = plotting.subplots()
    trials = {16: [(10.0, 3), (3.0, None)], 64: [(10.0, 2), (3.0, 40), (1.0, None)]}
    plotting.stability_map(ax, trials, late_step=10, predicted=[4.0, 8.0], title="net")
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"stable", "diverged by step 10", "diverged after step 10",
                          "predicted (predict_lr)"}
    np.testing.assert_array_equal(lines["stable"].get_xdata(), [16, 64])
    np.testing.assert_array_equal(lines["stable"].get_ydata(), [3.0, 1.0])
    np.testing.assert_array_equal(lines["diverged by step 10"].get_ydata(), [10.0, 10.0])
    np.testing.assert_array_equal(lines["diverged after step 10"].get_xdata(), [64])
    np.testing.assert_array_equal(lines["predicted (predict_lr)"].get_ydata(), [4.0, 8.0])
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_title() == "net"
    plt.close(fig)


def test_stability_map_leaves_out_empty_groups_and_rejects_bad_input():
    fig, ax = plotting.subplots()
    plotting.stability_map(ax, {32: [(1.0, None)]}, late_step=5, legend=None)
    assert [ln.get_label() for ln in ax.get_lines()] == ["stable"]
    assert ax.get_legend() is None
    with pytest.raises(ValueError, match="at least one"):
        plotting.stability_map(ax, {}, late_step=5)
    with pytest.raises(ValueError, match="late_step"):
        plotting.stability_map(ax, {32: [(1.0, None)]}, late_step=0)
    with pytest.raises(ValueError, match="positive and finite"):
        plotting.stability_map(ax, {32: [(-1.0, None)]}, late_step=5)
    with pytest.raises(ValueError, match="predicted has 2 values"):
        plotting.stability_map(ax, {32: [(1.0, None)]}, late_step=5, predicted=[1, 2])
    plt.close(fig)
