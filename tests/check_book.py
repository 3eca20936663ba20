"""Open every page of the built book in headless Chromium, offline, as a reader would.

``make check-book`` builds the book and runs this script on ``_build/html``::

    python tests/check_book.py [HTML_DIR] [--screenshots DIR] [--max-weight BYTES]

Every page is loaded from ``file://`` with all other network access blocked, at 1400 px and
at 400 px viewport width. A page fails on

- any console error or uncaught exception,
- any failed request, any attempt to reach the network (only ``file:``/``data:`` load), and
  any script included twice,
- math left untypeset after MathJax ran (a ``$…$``, ``\\(``, ``\\[`` or ``$$`` in the text),
  and any TeX error or undefined macro MathJax reports,
- an image that does not load or is wider than the text column, or more than one search
  box in view,
- a display equation wider than the text column at 1400 px (at 400 px it is reported, and
  fails with ``--strict``: the book's convention is to break long equations so that they
  fit a phone too),
- a page weight above 2 MB: the HTML, CSS and JavaScript it loads (what scripts fetch,
  fonts and images are reported beside it).

Screenshots of every page at both widths go to ``_build/screenshots/`` for people to look at.

Chromium is driven over its DevTools protocol on a pipe (``--remote-debugging-pipe``), so the
check needs only the Python standard library and a Chromium binary; nothing is downloaded at
run time. The binary is ``$CHROMIUM``, or the first of chromium, chromium-browser,
google-chrome on the PATH; when none is found and the script runs as root on Debian/Ubuntu,
it installs the distribution's ``chromium`` package, and otherwise says how to get one.

Exit status: 0 all pages pass, 1 a page fails, 2 no usable browser or no built book.
This file is not collected by pytest (its name does not start with ``test_``);
``tests/test_check_book.py`` checks it against small pages made to fail.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

WIDTHS = (1400, 400)
STRICT_WIDTH = 1400  # display math must fit the column here; at other widths it is reported
VIEWPORT_HEIGHT = 900
MAX_WEIGHT = 2_000_000  # bytes of HTML + CSS + JS per page
# Chromium renders tall captures in tiles, but beyond this a PNG is no use to a reader.
MAX_SCREENSHOT_HEIGHT = 30_000
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
# What a page loads, by DevTools' Network.ResourceType. The weight is html + css + js; data
# (what scripts fetch: the search page's result excerpts), fonts and images are reported.
KINDS = {"Document": "html", "Stylesheet": "css", "Script": "js", "XHR": "data",
         "Fetch": "data", "Font": "fonts", "Image": "images"}
WEIGHT_KINDS = ("html", "css", "js")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW_TO_GET_CHROMIUM = """\
No Chromium found. Install one and run again:
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install chromium
                  (on Ubuntu the package is chromium-browser)
  Fedora:         sudo dnf install chromium
  macOS:          brew install --cask chromium
or point the CHROMIUM environment variable at any Chromium or Chrome binary (version 112+).
As root on Debian/Ubuntu this script installs it itself unless --no-install is given."""
FLAGS = (
    "--headless=new",
    "--remote-debugging-pipe",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--mute-audio",
    # Belt and braces behind the per-page request interception: no host name resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    # No --allow-file-access-from-files: a reader who opens _build/html/index.html has
    # file:// pages that may not fetch() one another, and neither have these.
)


class BrowserMissing(RuntimeError):
    """No Chromium could be found or installed."""


class DevToolsError(RuntimeError):
    """Chromium answered a DevTools command with an error, exited, or did not answer."""


def find_chromium(explicit: str | None = None, *, install: bool = True) -> str:
    """Return the path of a Chromium binary, installing Debian's package if allowed.

    Parameters
    ----------
    explicit : str, optional
        A binary to use; otherwise ``$CHROMIUM``, then the PATH.
    install : bool
        Whether to run ``apt-get install chromium`` when none is found and this process is
        root on a system with apt-get.

    Returns
    -------
    str
        Path of the browser binary.

    Raises
    ------
    BrowserMissing
        When no browser is found (the message says how to install one).
    """
    explicit = explicit or os.environ.get("CHROMIUM")
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            raise BrowserMissing(f"CHROMIUM={explicit!r} is not an executable file.\n"
                                 + HOW_TO_GET_CHROMIUM)
        return path
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("check-book: no Chromium on the PATH; installing Debian's package "
              "(apt-get install chromium)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        ok = (subprocess.run(["apt-get", "update", "-qq"], check=False, env=env).returncode == 0
              and subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False,
                                 env=env).returncode == 0)
        if ok and (path := shutil.which("chromium")):
            return path
        raise BrowserMissing("apt-get could not install chromium.\n" + HOW_TO_GET_CHROMIUM)
    raise BrowserMissing(HOW_TO_GET_CHROMIUM)


class DevTools:
    """A headless Chromium and its DevTools protocol over a pipe.

    Chromium reads commands from its file descriptor 3 and writes replies and events to 4,
    each message JSON followed by a NUL byte. One thread does everything: while it waits for
    a reply it hands every event it reads to the listener of the event's session, which may
    answer at once (request interception must, or the page stalls).

    Parameters
    ----------
    executable : str
        The Chromium binary.
    """

    def __init__(self, executable: str):
        self._dir = tempfile.TemporaryDirectory(prefix="check-book-")
        self._log = Path(self._dir.name, "chromium.log")
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()
        # Copies numbered 10 and up, so that moving them onto 3 and 4 in the child cannot
        # overwrite one with the other; close-on-exec, so only 3 and 4 reach Chromium.
        child_in = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def onto_3_and_4() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        args = [executable, *FLAGS, f"--user-data-dir={self._dir.name}/profile"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to start its sandbox as root
        # preexec_fn is safe here: this process runs no other threads.
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(
                [*args, "about:blank"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=onto_3_and_4, close_fds=False)  # noqa: PLW1509
        os.close(child_in)
        os.close(child_out)
        self._buf = b""
        self._next_id = 0
        self._listeners: dict[str, callable] = {}
        self.version = self.call("Browser.getVersion", timeout=60)["product"]

    def close(self) -> None:
        """End Chromium and remove its profile directory."""
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        self._dir.cleanup()

    def log_tail(self, lines: int = 15) -> str:
        text = self._log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        """Send a command without waiting for its reply; return its id."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._w, data):]
        return self._next_id

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             *, timeout: float = 30.0) -> dict:
        """Send a command and return its result, dispatching events that arrive meanwhile."""
        msg_id = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next_message(deadline, f"the reply to {method}")
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise DevToolsError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})

    def pump(self, seconds: float, until=lambda: False, what: str = "") -> None:
        """Dispatch events for `seconds`, or until ``until()`` is true (then it must be)."""
        deadline = time.monotonic() + seconds
        while not until():
            try:
                self._next_message(deadline, what)
            except TimeoutError:
                if what:
                    raise
                return

    def listen(self, session: str, listener) -> None:
        self._listeners[session] = listener

    def _next_message(self, deadline: float, what: str) -> dict:
        """Read one message; an event is handed to its session's listener first."""
        while b"\0" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._r], [], [], remaining)[0]:
                raise TimeoutError(f"Chromium did not deliver {what or 'a message'} in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise DevToolsError("Chromium closed its DevTools pipe (it exited). "
                                    f"The end of its log:\n{self.log_tail()}")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        msg = json.loads(raw)
        if "method" in msg and "id" not in msg:
            listener = self._listeners.get(msg.get("sessionId"))
            if listener is not None:
                listener(msg["method"], msg.get("params", {}))
        return msg


@dataclass
class PageResult:
    """What one page did at one viewport width."""

    page: str
    width: int
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # bytes by kind: html, css, js, …
    images: int = 0
    display_math: int = 0
    screenshot: Path | None = None
    root: Path | None = None  # the book's root, for file names in messages

    @property
    def weight(self) -> int:
        return sum(self.sizes.get(k, 0) for k in WEIGHT_KINDS)


class _Recorder:
    """Listener for one page's events: blocks the network, collects errors and requests."""

    def __init__(self, devtools: DevTools, session: str, root: Path):
        self.devtools, self.session, self.root = devtools, session, root
        self.loaded = False
        self.console: list[str] = []
        self.blocked: list[str] = []
        self.failed: list[str] = []
        self.requests: dict[str, tuple[str, str]] = {}  # request id -> (url, resource type)

    def __call__(self, method: str, params: dict) -> None:
        handler = getattr(self, "on_" + method.replace(".", "_"), None)
        if handler is not None:
            handler(params)

    def on_Page_loadEventFired(self, params: dict) -> None:
        self.loaded = True

    def on_Fetch_requestPaused(self, params: dict) -> None:
        url = params["request"]["url"]
        if url.startswith(LOCAL_SCHEMES):
            self.devtools.send("Fetch.continueRequest", {"requestId": params["requestId"]},
                               self.session)
        else:
            self.blocked.append(url)
            self.devtools.send("Fetch.failRequest", {"requestId": params["requestId"],
                                                     "errorReason": "BlockedByClient"},
                               self.session)

    def on_Network_webSocketCreated(self, params: dict) -> None:
        self.blocked.append(params["url"])

    def on_Network_requestWillBeSent(self, params: dict) -> None:
        self.requests[params["requestId"]] = (params["request"]["url"],
                                              params.get("type", "Other"))

    def on_Network_loadingFailed(self, params: dict) -> None:
        url, _ = self.requests.get(params["requestId"], ("?", ""))
        if url.startswith(LOCAL_SCHEMES):  # blocked remote requests are reported as such
            self.failed.append(f"{_short(url, self.root)}: {params.get('errorText', 'failed')}")

    def on_Network_responseReceived(self, params: dict) -> None:
        status = params["response"].get("status", 0)
        if status >= 400:
            self.failed.append(f"{_short(params['response']['url'], self.root)}: HTTP {status}")

    def on_Runtime_consoleAPICalled(self, params: dict) -> None:
        if params["type"] in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", a.get("type"))))
                            for a in params.get("args", []))
            frames = params.get("stackTrace", {}).get("callFrames", [])
            where = f" ({_short(frames[0]['url'], self.root)}:{frames[0]['lineNumber'] + 1})" if frames else ""
            self.console.append(f"console.{params['type']}: {text}{where}")

    def on_Runtime_exceptionThrown(self, params: dict) -> None:
        d = params["exceptionDetails"]
        exc = d.get("exception", {})
        text = exc.get("description") or str(exc.get("value", "")) or d.get("text", "")
        text = text.splitlines()[0].removeprefix("Uncaught ") if text else "exception"
        where = f" ({_short(d['url'], self.root)}:{d.get('lineNumber', 0) + 1})" if d.get("url") else ""
        self.console.append(f"uncaught {text}{where}")

    def on_Log_entryAdded(self, params: dict) -> None:
        entry = params["entry"]
        if entry["level"] == "error":
            where = f" ({_short(entry['url'], self.root)})" if entry.get("url") else ""
            self.console.append(f"{entry['source']} error: {entry['text']}{where}")


def _short(url: str, root: Path | None = None, keep: int = 100) -> str:
    """A URL as a reader recognises it: a file under `root` relative to it, cut to `keep`."""
    if url.startswith("file://"):
        path = Path(unquote(urlsplit(url).path))
        if root is not None and path.is_relative_to(root):
            path = path.relative_to(root)
        url = path.as_posix()
    return url if len(url) <= keep else url[: keep - 1] + "…"


# Runs in the page once it has loaded: waits for MathJax's first typeset, forces every
# image to load and decode, waits for web fonts. Returns nothing; the probe comes after.
SETTLE = r"""
(async () => {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) await mj.startup.promise;
  const broken = [];
  await Promise.all([...document.images].map(async (img) => {
    img.loading = 'eager';
    try { await img.decode(); } catch (e) { broken.push(img.getAttribute('src')); }
  }));
  await document.fonts.ready;
  return broken;
})()
"""

# Runs after the screenshot: opens collapsed content (solutions, dropdowns) so that its math
# is checked too, then reports math left untypeset, TeX errors and display math that does
# not fit the text column.
PROBE = r"""
(async () => {
  const out = {mathjax: null, mathBroken: null, mathErrors: [], untypeset: [], displayMath: [],
               images: document.images.length, mathNodes: document.querySelectorAll('.math').length};
  // Search controls a reader sees outside the article (the search dialog is hidden, and the
  // search page's own form is part of the article).
  out.searchBoxes = [...document.querySelectorAll('.search-button__button, form.bd-search')]
    .filter((e) => !e.closest('dialog, article, .bd-search-container')
                   && e.getClientRects().length > 0
                   && getComputedStyle(e).visibility !== 'hidden').length;
  // A script included twice (as tex-chtml.js was, once per copy of the static path) runs
  // twice even when the browser fetches it once.
  const srcs = [...document.querySelectorAll('script[src]')].map((e) => e.src.split('?')[0]);
  out.scriptsTwice = [...new Set(srcs.filter((u, i) => srcs.indexOf(u) !== i))];
  document.querySelectorAll('details').forEach((d) => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach((e) => e.classList.remove('toggle-hidden'));
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const mj = window.MathJax;
  const source = new Map();
  if (mj && mj.startup && mj.startup.document) {
    out.mathjax = mj.version;
    for (const item of mj.startup.document.math) {
      source.set(item.typesetRoot, item.math.trim());
      let mml = '';
      try { mml = mj.startup.toMML(item.root); } catch (e) {
        out.mathBroken = String(e);  // MathJax itself is broken (e.g. loaded twice over)
        break;
      }
      // merror: a TeX error; a red mtext starting with a backslash: an undefined macro
      // (MathJax's noundefined package).
      const bad = mml.match(/<merror[\s\S]*?<\/merror>|<mtext mathcolor="red">\\[^<]*<\/mtext>/);
      if (bad) out.mathErrors.push({tex: item.math.trim(),
                                    what: bad[0].replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim()});
    }
  }
  // Code shows TeX as written; so do the search page's excerpts (Sphinx's search lists
  // source text, and MathJax is not loaded there).
  const skip = 'script, style, pre, code, textarea, kbd, samp, mjx-container, .highlight, '
             + '#search-results';
  const mark = /\\\(|\\\)|\\\[|\\\]|\$\$|\$[^\s$][^$]*\$|\\begin\{/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    const m = n.data.match(mark);
    if (m) {
      const at = Math.max(0, m.index - 30);
      out.untypeset.push(n.data.slice(at, m.index + 60).replace(/\s+/g, ' ').trim());
    }
  }
  out.wideImages = [...document.querySelectorAll('article img')].filter((img) => {
    const column = img.closest('article').getBoundingClientRect();
    const r = img.getBoundingClientRect();
    return r.width > 0 && (r.right > column.right + 1 || r.left < column.left - 1);
  }).map((img) => img.getAttribute('src'));
  for (const c of document.querySelectorAll('mjx-container[display="true"]')) {
    const math = c.querySelector('mjx-math') || c;
    const r = math.getBoundingClientRect();
    if (r.width === 0) continue;  // not rendered (e.g. hidden by the theme at this width)
    const column = c.closest('article, main') || document.body;
    const cr = column.getBoundingClientRect();
    const entry = {tex: source.get(c) || '', width: Math.round(r.width),
                   column: Math.round(cr.width), fits: true, how: ''};
    if (r.right > cr.right + 1 || r.left < cr.left - 1) {
      entry.fits = false;
      entry.how = 'spills over the column';
      // The innermost box that cuts the equation off decides what the reader gets.
      for (let a = c; a && a !== column; a = a.parentElement) {
        const ar = a.getBoundingClientRect();
        const ox = getComputedStyle(a).overflowX;
        if (ox === 'visible' || (r.right <= ar.right + 1 && r.left >= ar.left - 1)) continue;
        entry.how = (ox === 'auto' || ox === 'scroll') ? 'needs horizontal scrolling'
                                                       : 'is clipped';
        break;
      }
    }
    out.displayMath.push(entry);
  }
  return out;
})()
"""


def _evaluate(devtools: DevTools, session: str, expression: str, timeout: float = 60):
    reply = devtools.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                               "returnByValue": True}, session, timeout=timeout)
    if "exceptionDetails" in reply:
        d = reply["exceptionDetails"]
        raise DevToolsError(d.get("exception", {}).get("description") or d.get("text"))
    return reply["result"].get("value")


def _file_size(url: str) -> int:
    try:
        return Path(unquote(urlsplit(url).path)).stat().st_size
    except OSError:
        return 0


def check_page(devtools: DevTools, path: Path, page: str, width: int, *,
               query: str = "", screenshot: Path | None = None,
               max_weight: int = MAX_WEIGHT, root: Path | None = None,
               strict_width: int = STRICT_WIDTH) -> PageResult:
    """Load one page at one viewport width and report what a reader would meet.

    Parameters
    ----------
    devtools : DevTools
        The browser.
    path : Path
        The HTML file.
    page : str
        Its name in the report (relative to the book's root).
    width : int
        Viewport width in CSS pixels; under 600 the page is emulated as a phone.
    query : str
        Query string for the URL (the search page is loaded with a search).
    screenshot : Path, optional
        Where to write a full-page PNG.
    max_weight : int
        Largest allowed page weight in bytes (HTML, CSS and JS loaded).
    root : Path, optional
        The book's root, to which file names in messages are relative (default: the page's
        folder).
    strict_width : int
        From this viewport width up, a display equation wider than the text column fails
        the page; below it, it is a warning.

    Returns
    -------
    PageResult
        Failures, warnings, sizes and counts.
    """
    root = (root or path.parent).resolve()
    result = PageResult(page=page, width=width, root=root)
    target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = devtools.call("Target.attachToTarget", {"targetId": target,
                                                      "flatten": True})["sessionId"]
    rec = _Recorder(devtools, session, root)
    devtools.listen(session, rec)
    probe = None
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            devtools.call(f"{domain}.enable", session=session)
        devtools.call("Network.setCacheDisabled", {"cacheDisabled": True}, session)
        devtools.call("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session)
        devtools.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": VIEWPORT_HEIGHT, "deviceScaleFactor": 1,
                       "mobile": width < 600}, session)
        nav = devtools.call("Page.navigate", {"url": path.resolve().as_uri() + query}, session)
        if nav.get("errorText"):
            raise DevToolsError(f"the page did not load: {nav['errorText']}")
        devtools.pump(60, until=lambda: rec.loaded, what=f"the load event of {page}")
        for src in _evaluate(devtools, session, SETTLE):
            result.failures.append(f"image does not load: {src}")
        if screenshot is not None:
            _screenshot(devtools, session, width, screenshot)
            result.screenshot = screenshot
        probe = _evaluate(devtools, session, PROBE)
        devtools.pump(0.3)  # errors raised by timers the page set on load
    except (TimeoutError, DevToolsError) as e:
        result.failures.append(f"could not finish checking the page: {e}")
    finally:
        devtools.listen(session, None)
        devtools.call("Target.closeTarget", {"targetId": target})

    result.failures += rec.console
    result.failures += [f"network access attempted (blocked): {_short(u, root)}" for u in rec.blocked]
    result.failures += [f"request failed: {f}" for f in rec.failed]
    if probe is not None:
        _judge_probe(probe, result, strict_width)

    seen = set()
    for url, kind in rec.requests.values():
        if not url.startswith("file:"):
            continue
        file_url = url.split("?")[0]
        if file_url in seen:
            continue
        seen.add(file_url)
        key = KINDS.get(kind, "other")
        result.sizes[key] = result.sizes.get(key, 0) + _file_size(url)
    if result.weight > max_weight:
        result.failures.append(f"page weight {_kb(result.weight)} (HTML, CSS and JS) is "
                               f"over the limit of {_kb(max_weight)}")
    return result


def _screenshot(devtools: DevTools, session: str, width: int, path: Path) -> None:
    """Write a full-page PNG of the page as laid out at `width`."""
    metrics = devtools.call("Page.getLayoutMetrics", session=session)
    height = min(int(metrics["cssContentSize"]["height"]), MAX_SCREENSHOT_HEIGHT)
    shot = devtools.call("Page.captureScreenshot",
                         {"format": "png", "captureBeyondViewport": True,
                          "clip": {"x": 0, "y": 0, "width": width, "height": max(height, 1),
                                   "scale": 1}}, session, timeout=180)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def _one_line(tex: str, keep: int = 120) -> str:
    tex = " ".join(tex.split())
    return tex if len(tex) <= keep else tex[: keep - 1] + "…"


def _judge_probe(probe: dict, result: PageResult, strict_width: int = STRICT_WIDTH) -> None:
    """Turn what PROBE found in the page into failures and warnings."""
    if probe["mathNodes"] and not probe["mathjax"]:
        result.failures.append(f"{probe['mathNodes']} math elements but MathJax did not load")
    if probe["mathBroken"]:
        result.failures.append("MathJax is in a broken state: it cannot read back the math "
                               f"it typeset ({probe['mathBroken']})")
    result.failures += [f"TeX error: {e['what']} in '{_one_line(e['tex'])}'"
                        for e in probe["mathErrors"]]
    result.failures += [f"untypeset math in the text: '{_one_line(s)}'" for s in probe["untypeset"]]
    for eq in probe["displayMath"]:
        if not eq["fits"]:
            msg = (f"display equation {eq['how']} at {result.width} px: {eq['width']} px "
                   f"wide, text column {eq['column']} px: '{_one_line(eq['tex'])}'")
            (result.failures if result.width >= strict_width else result.warnings).append(msg)
    result.failures += [f"image wider than the text column at {result.width} px: {src}"
                        for src in probe["wideImages"]]
    result.failures += [f"script included twice: {_short(u, result.root)}"
                        for u in probe["scriptsTwice"]]
    if probe["searchBoxes"] > 1:
        result.failures.append(f"{probe['searchBoxes']} search boxes visible (one is enough)")
    result.images, result.display_math = probe["images"], len(probe["displayMath"])


def _kb(n: int) -> str:
    return f"{n / 1000:,.0f} kB" if n < 1_000_000 else f"{n / 1e6:.2f} MB"


def pages_of(html: Path) -> list[tuple[Path, str, str]]:
    """Every page of a built book: (file, name relative to the root, query string)."""
    out = []
    for p in sorted(html.rglob("*.html")):
        rel = p.relative_to(html)
        if any(part.startswith(("_", ".")) for part in rel.parts[:-1]):
            continue  # _static, _sources, _images: the theme's and MathJax's own files
        # The search page does nothing until asked: load it with a search.
        out.append((p, rel.as_posix(), "?q=Hessian" if rel.name == "search.html" else ""))
    return out


def redirect_target(path: Path) -> str | None:
    """The page a redirect-only HTML file (a ``Refresh`` meta tag and nothing else) points to."""
    text = path.read_text(errors="replace").strip()
    m = re.fullmatch(r'<meta http-equiv="refresh" content="0;\s*url=([^"]+)"\s*/?>', text,
                     flags=re.IGNORECASE)
    return m.group(1) if m else None


def check_site(html: Path, *, chromium: str, screenshots: Path | None = None,
               widths=WIDTHS, max_weight: int = MAX_WEIGHT, strict_width: int = STRICT_WIDTH,
               out=sys.stdout) -> list[PageResult]:
    """Check every page of `html` at every width; print a table and each failure."""
    pages = pages_of(html)
    if not pages:
        raise FileNotFoundError(f"no HTML pages under {html}")
    results = []
    devtools = DevTools(chromium)
    try:
        print(f"check-book: {len(pages)} pages of {html} in {devtools.version} (headless, "
              f"offline), at {' and '.join(f'{w} px' for w in widths)}", file=out)
        for path, name, query in pages:
            if (target := redirect_target(path)) is not None:
                # A redirect (index.html -> the first page) has nothing to render itself.
                ok = (path.parent / target).is_file()
                results.append(PageResult(page=name, width=max(widths), failures=[] if ok else
                                          [f"redirects to {target}, which does not exist"]))
                continue
            for width in widths:
                shot = None
                if screenshots is not None:
                    shot = screenshots / str(width) / (name.replace("/", "_")[:-5] + ".png")
                try:
                    r = check_page(devtools, path, name, width, query=query, screenshot=shot,
                                   max_weight=max_weight, root=html,
                                   strict_width=strict_width)
                except (TimeoutError, DevToolsError) as e:
                    r = PageResult(page=name, width=width, failures=[f"could not check: {e}"])
                results.append(r)
    finally:
        devtools.close()
    _print_report(results, out)
    return results


def _print_report(results: list[PageResult], out) -> None:
    wide = [r for r in results if r.width == max(x.width for x in results)]
    print(f"\n{'page':<44}{'html':>9}{'css':>9}{'js':>9}{'data':>8}{'weight':>10}"
          f"{'fonts':>9}{'images':>9}{'eqs':>5}", file=out)
    for r in wide:
        s = r.sizes
        print(f"{r.page:<44}" + "".join(f"{_kb(s.get(k, 0)):>9}" for k in ("html", "css", "js"))
              + f"{_kb(s.get('data', 0)):>8}{_kb(r.weight):>10}{_kb(s.get('fonts', 0)):>9}"
              + f"{_kb(s.get('images', 0)):>9}{r.display_math:>5}", file=out)
    print(file=out)
    for r in results:
        for w in r.warnings:
            print(f"warning {r.page} @{r.width}px: {w}", file=out)
        for f in r.failures:
            print(f"FAIL {r.page} @{r.width}px: {f}", file=out)
    failed = sorted({r.page for r in results if r.failures})
    heaviest = max(wide, key=lambda r: r.weight)
    print(f"\n{len(wide)} pages, {sum(len(r.failures) for r in results)} failures on "
          f"{len(failed)} pages, {sum(len(r.warnings) for r in results)} warnings; heaviest "
          f"page {_kb(heaviest.weight)} ({heaviest.page}).", file=out)
    shots = [r.screenshot for r in results if r.screenshot]
    if shots:
        print(f"Screenshots: {shots[0].parent.parent}/<width>/", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", nargs="?", default="_build/html", type=Path,
                        help="the built book (default: _build/html)")
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"),
                        help="directory for full-page PNGs (default: _build/screenshots)")
    parser.add_argument("--no-screenshots", action="store_true")
    parser.add_argument("--max-weight", type=int, default=MAX_WEIGHT,
                        help="largest page weight in bytes (default: 2,000,000)")
    parser.add_argument("--strict", action="store_true",
                        help="fail on display equations wider than the column at 400 px too")
    parser.add_argument("--chromium", help="browser binary (default: $CHROMIUM or the PATH)")
    parser.add_argument("--no-install", action="store_true",
                        help="never apt-get install chromium")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").is_file():
        print(f"check-book: no built book at {args.html} (run `make book` first)",
              file=sys.stderr)
        return 2
    try:
        chromium = find_chromium(args.chromium, install=not args.no_install)
    except BrowserMissing as e:
        print(f"check-book: {e}", file=sys.stderr)
        return 2
    try:
        results = check_site(args.html, chromium=chromium,
                             screenshots=None if args.no_screenshots else args.screenshots,
                             max_weight=args.max_weight,
                             strict_width=min(WIDTHS) if args.strict else STRICT_WIDTH)
    except (DevToolsError, TimeoutError) as e:
        print(f"check-book: Chromium ({chromium}) could not be driven: {e}", file=sys.stderr)
        return 2
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
