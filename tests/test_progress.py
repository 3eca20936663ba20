"""rmtlr.progress: one switch for every bar, and no ipywidgets warning."""

import warnings

from rmtlr.progress import progress_bar, progress_enabled


def test_tqdm_disable_wins_over_an_explicit_request(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not progress_enabled(True)
    assert progress_bar(range(3), desc="x", progress=True).disable


def test_explicit_choice_and_pytest_default(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert progress_enabled(True) and not progress_enabled(False)
    assert not progress_enabled(None)  # PYTEST_CURRENT_TEST is set while a test runs
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    assert progress_enabled(None)


def test_plain_text_bar_iterates_without_warnings(monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(progress_bar(range(4), desc="steps", progress=True)) == [0, 1, 2, 3]
    assert "steps" in capsys.readouterr().err
