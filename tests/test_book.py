"""The book's structure: what nbval and the Sphinx build do not check by themselves.

nbval runs each chapter but cannot tell that a chapter is missing from the table of
contents, that a chapter has no checked cell at all, or that the stored outputs were made
under another profile; Sphinx (run only by `make book`) is the only other place an
unknown citation key would surface.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def _toc_files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        for v in node.values():
            out += _toc_files(v)
    elif isinstance(node, list):
        for v in node:
            out += _toc_files(v)
    return out


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _text(cell: dict) -> str:
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream")


def test_every_chapter_is_in_the_table_of_contents_in_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = [f for f in _toc_files(toc) if re.match(r"book/\d\d_", f)]
    assert listed == [f"book/{p.stem}" for p in CHAPTERS]
    assert len(CHAPTERS) >= 9


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_a_checked_cell_with_stored_quick_cpu_outputs(path):
    cells = _code_cells(path)
    checked = [c for c in cells if "nbval-check-output" in c.get("metadata", {}).get("tags", [])]
    assert checked, "no cell tagged nbval-check-output"
    assert not [c for c in cells if "NBVAL_CHECK_OUTPUT" in "".join(c["source"])], \
        "check cells are marked by the nbval-check-output tag, not a comment the reader sees"
    assert all(_text(c).strip() for c in checked), "a checked cell has no stored output"
    first = next(c for c in cells if c.get("outputs"))
    assert "rmtlr profile: quick | device: cpu" in _text(first), \
        "the first output must name the profile and device, and be the quick profile's on CPU"
    assert not [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    counts = [c["execution_count"] for c in cells if "".join(c["source"]).strip()]
    assert counts == list(range(1, len(counts) + 1)), "stored outputs are not from one clean run"


def test_every_citation_key_is_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book/references.bib").read_text(),
                          flags=re.MULTILINE))
    sources = [*CHAPTERS, *(ROOT / "book").glob("*.md")]
    cited = set()
    for p in sources:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", p.read_text()):
            cited |= {k.strip() for k in group.split(",")}
    assert cited, "no citations found: the pattern is wrong"
    assert cited <= keys, f"unknown citation keys: {sorted(cited - keys)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_glued_value_the_prose_uses_is_in_the_stored_outputs(path):
    # A glue key that a code edit stopped writing fails only `make book`, twenty minutes in;
    # this finds it from the stored outputs in a second.
    cells = json.loads(path.read_text())["cells"]
    used = {key for c in cells if c["cell_type"] == "markdown"
            for key in re.findall(r"\{glue(?::\w+)?\}`([\w-]+)", "".join(c["source"]))}
    used |= {key for c in cells if c["cell_type"] == "markdown"
             for key in re.findall(r"```\{glue:figure\}\s+([\w-]+)", "".join(c["source"]))}
    glued = {o["metadata"]["scrapbook"]["name"] for c in cells for o in c.get("outputs", [])
             if "scrapbook" in o.get("metadata", {})}
    assert used, "no glue references found: the pattern is wrong"
    assert used <= glued, f"used in the text but not glued: {sorted(used - glued)}"
