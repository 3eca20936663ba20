"""Figures of chapter 9."""


import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from rmtlr import plotting

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


def test_rates_against_batch_size_draws_measured_brackets_and_refuses_bad_ones():
    fig, ax = plotting.subplots()
    plotting.rates_against_batch_size(ax, _points(), measured={16: (0.02, 0.04), 64: (0.08, np.inf)})
    bar = next(l for l in ax.lines if l.get_label() == "measured α_max (bracket)")
    assert list(bar.get_xydata()[:, 1]) == [0.02, 0.04] and list(bar.get_xdata()) == [16, 16]
    censored = next(l for l in ax.lines if l.get_marker() == "^")
    assert list(censored.get_xydata()[0]) == [64, 0.08]
    with pytest.raises(ValueError, match=r"measured\[16\]"):
        plotting.rates_against_batch_size(ax, _points(), measured={16: (0.04, 0.02)})
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
