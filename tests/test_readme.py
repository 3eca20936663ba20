"""The README's Python examples run and print what the README says they print.

Every ```python block of the README is followed by a ```text block with its output, the
first code a reader tries and what they should see. The test runs each block and compares
its output with that text token by token: words exactly, numbers to the precision they
are printed with (one unit in the last printed digit, or 1e−4 relative for numbers that
come out of float32 network computations and may differ in the last digits between
machines).
"""

from __future__ import annotations

import pathlib
import re
import runpy

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
# A python block, then (after blank lines only) the text block with its output, if any.
BLOCKS = re.findall(r"```python\n(.*?)```\n(?:\s*```text\n(.*?)```)?",
                    README.read_text(), flags=re.DOTALL)
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _tokens(text: str) -> list[str]:
    return re.findall(rf"{_NUMBER.pattern}|[^\s\d.+-]+|[.+-]", text)


def _same(expected: str, got: str) -> bool:
    """Whether two printed outputs agree: words exactly, numbers to their printed precision."""
    exp_lines = [line for line in expected.strip().splitlines() if line.strip()]
    got_lines = [line for line in got.strip().splitlines() if line.strip()]
    if len(exp_lines) != len(got_lines):
        return False
    for e_line, g_line in zip(exp_lines, got_lines):
        e_tok, g_tok = _tokens(e_line), _tokens(g_line)
        if len(e_tok) != len(g_tok):
            return False
        for e, g in zip(e_tok, g_tok):
            if _NUMBER.fullmatch(e) and _NUMBER.fullmatch(g):
                mantissa = re.split(r"[eE]", e)[0]
                decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
                unit = 10.0 ** -decimals * (10.0 ** int(re.split(r"[eE]", e)[1])
                                            if re.search(r"[eE]", e) else 1.0)
                # 1 + 1e−9: the unit itself is not exact in binary.
                if abs(float(e) - float(g)) > max(unit * (1 + 1e-9) if decimals else 0.0,
                                                  1e-4 * abs(float(e))):
                    return False
            elif e != g:
                return False
    return True


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


def test_output_comparison_has_teeth():
    assert _same("B 128 lr 0.0244", "B 128 lr 0.0243")
    assert not _same("B 128 lr 0.0244", "B 128 lr 0.0254")
    assert not _same("B 128 lr 0.0244", "B 129 lr 0.0244")
    assert not _same("exponent 0.50", "exponent 0.50\nextra line")
    assert not _same("batch λ1 80.15", "batch λ2 80.15")


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_prints_what_the_readme_shows(i, tmp_path, capsys):
    # Before, this test only asserted that each example printed *something*.
    code, expected = BLOCKS[i]
    assert expected.strip(), (f"README example {i + 1} has no ```text block with its output "
                              "right after it")
    script = tmp_path / f"readme_example_{i}.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")
    got = capsys.readouterr().out
    assert _same(expected, got), f"README shows:\n{expected}\nbut the example prints:\n{got}"
