"""The rendered site's conventions that a chapter or a config edit could break silently.

The repository's address is written once, in ``_config.yml`` (the Colab, Binder and
repository buttons are made from it); the chapters' first-cell install line and every link
to the repository must agree with it. The table of contents numbers chapters, equations and
figures ((5.3), Fig. 8.2), so a chapter title carries no number of its own, ``{eq}``
references are not preceded by another "Eq.", and the paper's equations are written
"paper Eq. 24" so that they cannot be mistaken for the book's. ``make check-book``
(tests/check_book.py) checks the built pages themselves in a browser.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]
OWNER_NAME = REPO_URL.removeprefix("https://github.com/")


def _cells(path: Path, kind: str) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]
            if c["cell_type"] == kind]


def _prose(path: Path) -> str:
    return "\n".join(_cells(path, "markdown")) if path.suffix == ".ipynb" else path.read_text()


def test_the_repository_url_is_a_github_repository():
    # Colab's and Binder's buttons are built from it as github.com/<owner>/<name>.
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", REPO_URL), REPO_URL


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_first_cell_installs_from_the_configured_repository(path):
    first = _cells(path, "code")[0]
    urls = re.findall(r"git\+(https://[^\s\"'@]+)", first)
    assert urls, "the first code cell has no `pip install ... git+<repository>` line for Colab"
    assert [u.removesuffix(".git").rstrip("/") for u in urls] == [REPO_URL], \
        f"install line points to {urls}, _config.yml's repository.url is {REPO_URL}"


def test_every_link_to_the_repository_uses_the_configured_url():
    name = OWNER_NAME.split("/")[1]
    sources = [ROOT / "README.md", *PAGES, *CHAPTERS]
    wrong = []
    for p in sources:
        text = p.read_text()
        # github.com/<owner>/<this project's name>, and Colab's github/<owner>/<name>/blob/<branch>
        for owner_name in re.findall(rf"github\.com/([\w.-]+/{re.escape(name)})\b", text):
            if owner_name != OWNER_NAME:
                wrong.append(f"{p.name}: github.com/{owner_name}")
        for owner_name, branch in re.findall(
                rf"colab\.research\.google\.com/github/([\w.-]+/{re.escape(name)})/blob/([\w.-]+)",
                text):
            if (owner_name, branch) != (OWNER_NAME, BRANCH):
                wrong.append(f"{p.name}: colab …/{owner_name}/blob/{branch}")
    assert not wrong, f"links that disagree with _config.yml ({REPO_URL}, {BRANCH}): {wrong}"


def test_chapters_are_numbered_by_the_table_of_contents():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for part in toc["parts"]:
        files = [c["file"] for c in part["chapters"]]
        numbered = any(re.match(r"book/\d\d_", f) for f in files)
        assert part.get("numbered", False) == numbered, \
            f"part {part['caption']!r}: chapters numbered, back matter not"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_title_carries_no_number_of_its_own(path):
    title = _cells(path, "markdown")[0].splitlines()[0]
    assert title.startswith("# "), f"the first cell starts with the chapter title, not {title!r}"
    assert not re.match(r"#\s+\d+(\.\d+)*\.?\s", title), \
        f"{title!r}: the table of contents numbers chapters; write the title without its number"


@pytest.mark.parametrize("path", [*CHAPTERS, *PAGES], ids=lambda p: p.stem)
def test_equation_references_are_not_doubled_and_paper_equations_are_named(path):
    text = _prose(path)
    # {eq} renders as "Eq. (5.3)" (math_eqref_format), so "Eq. {eq}`x`" reads "Eq. Eq. (5.3)".
    doubled = re.findall(r"(?:\bEqs?\.|\b[Ee]quations?)\s*\{eq\}`[^`]+`", text)
    assert not doubled, f"write {{eq}}`label` alone, it renders as 'Eq. (5.3)': {doubled}"
    # A bare "Eq. 24" is the paper's numbering; say so, so that it is not read as the book's.
    bare = re.findall(r"(?<![Pp]aper )(?<![Pp]aper's )\b(?:Eqs?|Equations?)\.?\s?\(?\d+", text)
    assert not bare, f"write the paper's equations as 'paper Eq. 24': {bare}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_opens_in_the_python3_kernel(path):
    # `make lab` registers the project's .venv as the kernel "python3"; Binder and Colab
    # start the kernel a notebook names, and without a name JupyterLab asks the reader.
    spec = json.loads(path.read_text())["metadata"].get("kernelspec", {})
    assert spec.get("name") == "python3", f"kernelspec is {spec!r}, not name 'python3'"


def test_bibliography_lists_only_cited_works():
    text = (ROOT / "book" / "bibliography.md").read_text()
    assert "{bibliography}" in text
    assert ":all:" not in text, "the bibliography lists cited works only"


def test_mathjax_is_not_in_the_static_path():
    # Jupyter Book adds every .js file under html_static_path to every page: MathJax there
    # meant all of its 69 files on every page. It is served as an extra path instead.
    sphinx = CONFIG["sphinx"]["config"]
    static = ["_static", *sphinx.get("html_static_path", [])]
    assert "_vendor" in sphinx["html_extra_path"]
    assert not any((ROOT / s / "mathjax").exists() for s in static), \
        "a MathJax copy in the static path (an old `make book` left it; `make clean` removes it)"
