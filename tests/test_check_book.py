"""tests/check_book.py, the browser check of the built book, on small pages made to fail.

The page-loading tests need a Chromium (``make check-book`` installs Debian's as root); without
one they are skipped and the rest still run.
"""

import base64
import io
import sys
from pathlib import Path

import pytest

# check_book.py is a script beside the tests, not part of a package.
sys.path.insert(0, str(Path(__file__).parent))
import check_book

# A 1x1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")


def _page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>"


@pytest.fixture(scope="module")
def chromium():
    try:
        return check_book.find_chromium(install=False)
    except check_book.BrowserMissing:
        pytest.skip("no Chromium on this machine (make check-book installs it)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("html")
    (root / "dot.png").write_bytes(PNG)
    (root / "app.js").write_text("window.ok = 1;\n")
    (root / "big.js").write_text("// padding\n" * 3000)  # 33 kB
    pages = {
        "good.html": _page("<p>Plain text, a price in words, <code>$HOME</code> in code.</p>"
                           "<img src='dot.png' alt='a dot'>", "<script src='app.js'></script>"),
        "console.html": _page("<script>console.error('boom'); undefinedFunction();</script>"),
        "network.html": _page("<img src='https://example.org/x.png' alt='remote'>"),
        "missing.html": _page("<script src='missing.js'></script><img src='gone.png' alt=''>"),
        "math.html": _page(r"<p>The variance is $\sigma^2/B$ and \(x\) stays raw.</p>"),
        "heavy.html": _page("", "<script src='big.js'></script>"),
        "twice.html": _page("", "<script src='app.js'></script><script src='app.js?v=2'></script>"),
        "wide.html": _page("<article style='width: 300px'><img src='dot.png' alt='' "
                           "style='width: 500px'></article>"),
        "same.html": _page("", "<script src='app.js?v=1'></script><script src='app.js?v=1'></script>"),
    }
    for name, html in pages.items():
        (root / name).write_text(html)
    (root / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=good.html" />')
    (root / "_static").mkdir()
    (root / "_static" / "ignored.html").write_text(_page("<script>console.error('x')</script>"))
    return root


@pytest.fixture(scope="module")
def results(site, chromium) -> dict[str, list[str]]:
    out = check_book.check_site(site, chromium=chromium, widths=(1400,), max_weight=20_000,
                                out=io.StringIO())
    return {r.page: r.failures for r in out}


def _one(failures: list[str], text: str) -> bool:
    return any(text in f for f in failures)


def test_a_clean_page_and_a_redirect_pass(results):
    assert results["good.html"] == []
    assert results["index.html"] == []


def test_pages_under_underscore_folders_are_not_pages(results):
    assert "_static/ignored.html" not in results


def test_console_errors_and_exceptions_fail(results):
    f = results["console.html"]
    assert _one(f, "console.error: boom")
    assert _one(f, "uncaught ReferenceError: undefinedFunction is not defined")


def test_network_access_is_blocked_and_fails(results):
    f = results["network.html"]
    assert _one(f, "network access attempted (blocked): https://example.org/x.png")
    assert _one(f, "image does not load: https://example.org/x.png")


def test_missing_files_fail(results):
    f = results["missing.html"]
    assert _one(f, "request failed: missing.js: net::ERR_FILE_NOT_FOUND")
    assert _one(f, "image does not load: gone.png")


def test_an_image_wider_than_the_column_fails(results):
    assert results["wide.html"] == ["image wider than the text column at 1400 px: dot.png"]


def test_untypeset_math_fails(results):
    f = results["math.html"]
    assert _one(f, r"untypeset math in the text: 'The variance is $\sigma^2/B$")


def test_page_weight_and_duplicate_scripts_fail(results):
    assert _one(results["heavy.html"], "over the limit of 20 kB")
    assert not _one(results["good.html"], "over the limit")
    assert _one(results["twice.html"], "script included twice: app.js")
    assert _one(results["same.html"], "script included twice: app.js")


def test_redirect_to_a_missing_page_fails(tmp_path, chromium):
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=nowhere.html" />')
    [r] = check_book.check_site(tmp_path, chromium=chromium, widths=(1400,),
                                out=io.StringIO())
    assert r.failures == ["redirects to nowhere.html, which does not exist"]


MATHJAX = Path(__file__).resolve().parents[1] / "_vendor" / "_static" / "mathjax" / "startup.js"


@pytest.mark.skipif(not MATHJAX.is_file(), reason="no MathJax copy yet (make book fetches it)")
def test_tex_errors_and_equations_wider_than_the_column_fail(tmp_path, chromium):
    wide = " + ".join(f"x_{{{i}}}" for i in range(60))
    head = ("<script>window.MathJax = {loader: {load: ['input/tex', 'output/chtml']}};</script>"
            f"<script defer src='{MATHJAX.as_uri()}'></script>")
    (tmp_path / "tex.html").write_text(_page(
        r"<article style='width: 600px'><p>Fine: \(x^2\). Undefined: \(\notamacro{x}\).</p>"
        rf"<div class='math'>\[{wide}\]</div></article>", head))
    [r] = check_book.check_site(tmp_path, chromium=chromium, widths=(1400,), out=io.StringIO())
    assert _one(r.failures, r"TeX error: \notamacro in '\notamacro{x}'")
    assert _one(r.failures, "display equation spills over the column at 1400 px")
    assert len(r.failures) == 2, r.failures


def test_no_browser_says_how_to_get_one(monkeypatch):
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(check_book.BrowserMissing, match="apt-get install chromium"):
        check_book.find_chromium(install=False)
    monkeypatch.setenv("CHROMIUM", "/no/such/chrome")
    with pytest.raises(check_book.BrowserMissing, match="not an executable"):
        check_book.find_chromium(install=False)


def test_missing_book_exits_2(tmp_path, capsys):
    assert check_book.main([str(tmp_path), "--no-install"]) == 2
    assert "run `make book` first" in capsys.readouterr().err
