"""Chapter set-up and the hand-over of results to the prose."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from rmtlr import notebook, plotting


def test_start_prints_the_profile_first_and_fixes_threads(capsys, monkeypatch):
    monkeypatch.setenv("RMTLR_PROFILE", "quick")
    before = torch.get_num_threads()
    try:
        prof = notebook.start(seed=3)
        assert capsys.readouterr().out.startswith("rmtlr profile: quick | device: cpu")
        assert torch.get_num_threads() == 1 and prof.name == "quick"
        a = torch.rand(3)
        notebook.start(seed=3)
        assert torch.equal(a, torch.rand(3))
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        notebook.start(threads=0)


def test_verdict_prints_and_asserts(capsys):
    two, one = 2, 1
    notebook.verdict("two is more than one", two > one)
    notebook.verdict("numpy comparisons count", np.float64(2.0) > 1)
    assert capsys.readouterr().out.splitlines() == ["✓ two is more than one",
                                                     "✓ numpy comparisons count"]
    with pytest.raises(AssertionError, match="claim no longer holds: one is more than two"):
        notebook.verdict("one is more than two", one > two)
    with pytest.raises(TypeError, match="holds must be a bool"):
        notebook.verdict("a number is not a verdict", 0.3)


def test_glue_returns_the_value_and_rejects_bad_names():
    x = np.float64(1.25)
    assert notebook.glue("test-x", x) is x
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        notebook.glue("", 1)


def test_figure_closes_the_figure():
    fig, _ = plotting.subplots()
    notebook.figure("fig-test", fig)
    assert not plt.fignum_exists(fig.number)
