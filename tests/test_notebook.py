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


def test_start_names_the_data_of_the_active_profile_second(capsys, monkeypatch):
    monkeypatch.setenv("RMTLR_PROFILE", "quick")
    before = torch.get_num_threads()
    try:
        notebook.start(data={"quick": "images", "gpu": "cifar100", "full": "cifar100"})
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("rmtlr profile: quick")
        assert lines[1] == ("data: CIFAR-10 JPEG subset (Krizhevsky 2009; shipped with rmtlr), "
                            "not CIFAR-100")
        notebook.start(data="cifar100")
        assert capsys.readouterr().out.splitlines()[1] == (
            "data: CIFAR-100 (Krizhevsky 2009; torchvision)")
        notebook.start()
        assert len(capsys.readouterr().out.splitlines()) == 1
        with pytest.raises(ValueError, match="entry for the active profile 'quick'"):
            notebook.start(data={"full": "cifar100"})
        with pytest.raises(ValueError, match="name must be one of"):
            notebook.start(data="cifar1000")
    finally:
        torch.set_num_threads(before)


def test_describe_matches_what_load_returns():
    from rmtlr import data
    ds = data.load("images", "val")
    assert ds.description.startswith(data.describe("images"))
    ds = data.load("gaussian_mixture", "train", n=16)
    assert ds.description.startswith(data.describe("gaussian_mixture"))


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
