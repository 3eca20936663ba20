"""The README's Python examples run as printed (they are the first code a reader tries)."""

from __future__ import annotations

import pathlib
import re
import runpy

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_runs(i, tmp_path, capsys):
    script = tmp_path / f"readme_example_{i}.py"
    script.write_text(BLOCKS[i])
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip()  # each example prints its result
