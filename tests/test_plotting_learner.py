"""Figures of chapter 10."""


import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from rmtlr import plotting

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
    assert len(axes[1].texts) == 2
    # A linear cost axis from zero, with room right of the costliest point.
    assert axes[1].get_xscale() == "linear" and axes[1].get_xlim()[0] == 0
    assert axes[1].get_xlim()[1] > 75.0 * 1.3
    with pytest.raises(ValueError, match="2 epochs but 3 values"):
        plotting.plot_accuracy_vs_epoch(axes[0], {"x": ([1, 2], [0.1, 0.2, 0.3])})
    with pytest.raises(ValueError, match="cost must be positive"):
        plotting.plot_accuracy_vs_cost(axes[1], {"x": (0.0, 0.5)})
    plt.close(fig)


def test_accuracy_vs_cost_stacks_labels_of_coinciding_points():
    # Two tuned baselines can land on the same cost and accuracy (chapter 10: SGD and Adam,
    # each 5 runs of 15 epochs, both at 0.583): their labels must not be drawn on top of
    # each other; a distant point keeps the default offset.
    fig, ax = plotting.subplots(1)
    plotting.plot_accuracy_vs_cost(ax, {"SGD": (75.0, 0.583), "Adam": (75.0, 0.5825),
                                        "learner": (25.0, 0.42)})
    offsets = {t.get_text(): t.xyann for t in ax.texts}
    assert offsets["SGD"] != offsets["Adam"]
    assert offsets["learner"] == offsets["SGD"]
    assert offsets["Adam"][1] < offsets["SGD"][1]  # stacked below
    plt.close(fig)
