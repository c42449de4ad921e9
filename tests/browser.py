"""A real headless Chromium driven over the DevTools protocol, for tests of ``report.html``.

``open_page(path)`` loads a local file in a fresh profile with every background service off,
records what the page did (console messages, exceptions, log entries, every network request),
and takes a full-page screenshot and a PDF print.  No test double: the system's Chromium
(Debian package ``chromium``, installed by ``make chromium``).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    """The system Chromium, or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageReport:
    url: str
    requests: list[str] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    loaded: bool = False
    evaluated: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""
    pdf: bytes = b""

    @property
    def errors(self) -> list[str]:
        """Everything the page complained about: console errors and warnings, uncaught
        exceptions, log entries of level error or warning (CSP refusals land here)."""
        out = [f"console {c['type']}: {c.get('args')}" for c in self.console]
        out += [
            f"exception: {e.get('text')} {e.get('exception', {}).get('description', '')}"
            for e in self.exceptions
        ]
        out += [
            f"log {e.get('level')} ({e.get('source')}): {e.get('text')} {e.get('url', '')}"
            for e in self.log
            if e.get("level") in ("error", "warning")
        ]
        return out

    @property
    def foreign_requests(self) -> list[str]:
        """Requests for anything but the page itself."""
        return [u for u in self.requests if u != self.url]


class _Session:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mine = self.next_id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == mine:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def drain(self, seconds: float) -> None:
        """Collect events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                return
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, timeout: float) -> bool:
        if any(e["method"] == method for e in self.events):
            return True
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                return False
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return True
        return False


CHECKS_JS = """(() => ({
  scripts: document.querySelectorAll('script').length,
  title: document.title,
  text: document.body.innerText,
  details: document.querySelectorAll('details').length,
  svgs: document.querySelectorAll('svg').length,
  height: document.documentElement.scrollHeight,
  width: document.documentElement.scrollWidth,
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
  badNodes: document.querySelectorAll('iframe, object, embed, img, link, form, base').length,
}))()"""


def open_page(path: Path, *, width: int = 1200, open_details: bool | int = True) -> PageReport:
    """Load ``path`` in a fresh headless Chromium; return what happened and the pictures.

    With ``open_details``, the page's ``<details>`` (all, or the first N) are opened through
    the DevTools protocol (the page has no script) before the screenshot, to show rows too."""
    from websockets.sync.client import connect

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("chromium is not installed (make chromium)")
    url = path.resolve().as_uri()
    profile = tempfile.mkdtemp(prefix="contactpipe-chromium-")
    proc = subprocess.Popen(
        [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=20) as ws:
            return _drive(_Session(ws), url, width, open_details)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _drive(session: _Session, url: str, width: int, open_details: bool | int) -> PageReport:
    """Navigate to ``url`` and record what happened (see :func:`open_page`)."""
    for domain in ("Page", "Runtime", "Log", "Network"):
        session.call(f"{domain}.enable")
    session.events.clear()  # about:blank's
    session.call("Page.navigate", url=url)
    report = PageReport(url=url)
    report.loaded = session.wait_for("Page.loadEventFired", 30)
    session.drain(0.5)  # anything late (a lazy load, a deferred error)
    value = session.call("Runtime.evaluate", expression=CHECKS_JS, returnByValue=True)["result"][
        "value"
    ]
    report.evaluated = value
    if open_details:
        n = 10**6 if open_details is True else int(open_details)
        session.call(
            "Runtime.evaluate",
            expression="Array.from(document.querySelectorAll('details'))"
            f".slice(0, {n}).forEach(d => d.open = true)",
        )
    metrics = session.call("Page.getLayoutMetrics")
    height = int(metrics["cssContentSize"]["height"])
    shot = session.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": width, "height": min(height, 16000), "scale": 1},
    )
    report.screenshot = base64.b64decode(shot["data"])
    report.pdf = base64.b64decode(session.call("Page.printToPDF", timeout=60)["data"])
    session.drain(0.3)
    for e in session.events:
        method, params = e["method"], e.get("params", {})
        if method == "Network.requestWillBeSent":
            report.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            args = [a.get("value", a.get("description")) for a in params.get("args", [])]
            report.console.append({"type": params.get("type"), "args": args})
        elif method == "Runtime.exceptionThrown":
            report.exceptions.append(params.get("exceptionDetails", {}))
        elif method == "Log.entryAdded":
            report.log.append(params.get("entry", {}))
    return report


def check_in_browser(path: Path, name: str) -> PageReport:
    """Open ``path`` in Chromium; assert it loads clean and offline, without a script, fits a
    laptop's width and links only to itself or files beside it; keep its screenshot and PDF
    print as ``<artefacts>/<name>.png`` / ``.pdf``."""
    page = open_page(path)
    out = artefact_dir()
    (out / f"{name}.png").write_bytes(page.screenshot)
    (out / f"{name}.pdf").write_bytes(page.pdf)
    assert page.loaded
    assert page.errors == []
    assert page.foreign_requests == []
    assert page.evaluated["scripts"] == 0
    assert page.evaluated["badNodes"] == 0
    assert page.evaluated["width"] <= 1200  # no horizontal scrolling on a laptop
    assert page.screenshot.startswith(b"\x89PNG") and len(page.screenshot) > 10_000
    assert page.pdf.startswith(b"%PDF")
    for href in page.evaluated["links"]:
        assert href.startswith("#") or (path.parent / unquote(href)).exists(), href
    return page


def text_of(page: str) -> str:
    """A page's text as a person reads it (tags dropped, entities decoded, runs of spaces as
    one)."""
    body = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def artefact_dir() -> Path:
    """Where browser tests keep their screenshots (``$CONTACTPIPE_ARTEFACTS`` or
    ``.test-artefacts/`` at the repository root)."""
    root = os.environ.get("CONTACTPIPE_ARTEFACTS")
    path = Path(root) if root else Path(__file__).resolve().parent.parent / ".test-artefacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":  # python tests/browser.py PAGE.html OUT.png [OPEN]: a screenshot
    import sys  # with the first OPEN codes opened (default 1); README's is made so

    opened = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    shot = open_page(Path(sys.argv[1]), open_details=opened)
    if shot.errors or shot.foreign_requests:
        sys.exit(f"the page is not clean: {shot.errors + shot.foreign_requests}")
    Path(sys.argv[2]).write_bytes(shot.screenshot)
