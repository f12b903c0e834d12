"""Open a report page in a real headless Chromium and list what is wrong with it.

A report is a folder (index.html + PNG figures). To check it the way a reader sees it, the folder is served on
localhost by ``http.server`` in a thread, Debian's ``/usr/bin/chromium`` is driven through Playwright's Python
package (Playwright's own browser download is never used: ``executable_path`` points at the system Chromium), and
after the page's ``load`` event (which waits for every image) we collect

* every ``<img>``: loaded means ``complete && naturalWidth > 0`` (a 404 or a file that is not an image fails this),
* console messages of level error or warning (a failed resource load is logged as an error) and uncaught page
  exceptions,
* requests that failed outright or answered with a status >= 400,

and save a full-page screenshot. :func:`problems` turns that into one line per fault; an empty list is a clean page.

The machine has no network, so Chromium runs headless with a fresh empty profile and every background service off
(``CHROMIUM_ARGS``). When Chromium or Playwright is missing, :func:`unavailable` says why, for ``pytest.skip``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Playwright adds --headless itself (headless=True) and runs the browser with a new empty --user-data-dir.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
_IMAGES_JS = "() => Array.from(document.images, i => ({src: i.getAttribute('src'), complete: i.complete, " \
             "width: i.naturalWidth}))"


def chromium_path() -> str | None:
    """The Chromium binary: $LIMITLAB_CHROMIUM, else ``chromium`` / ``chromium-browser`` on the PATH, else None."""
    explicit = os.environ.get("LIMITLAB_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable() -> str | None:
    """Why the browser check cannot run here (a sentence), or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return "no chromium binary (make test installs Debian's chromium as root; or set LIMITLAB_CHROMIUM)"
    return None


@dataclass
class PageCheck:
    """What a browser saw on one page."""

    url: str
    images: list[dict[str, Any]] = field(default_factory=list)  # {src, complete, width}
    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text), every level
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions
    failed: list[str] = field(default_factory=list)  # "URL (reason or HTTP status)"
    links: list[str] = field(default_factory=list)  # every <a href>, absolute as the browser resolved it
    screenshot: Path | None = None


def problems(check: PageCheck) -> list[str]:
    """One line per fault: no image, an image that did not load, a console error or warning, an uncaught exception,
    a failed request."""
    out = []
    if not check.images:
        out.append("the page has no <img>")
    out += [f"image did not load: {i['src']!r} (complete={i['complete']}, naturalWidth={i['width']})"
            for i in check.images if not (i["complete"] and i["width"] > 0)]
    out += [f"console {level}: {text}" for level, text in check.console if level in ("error", "assert", "warning")]
    out += [f"uncaught exception: {e}" for e in check.page_errors]
    out += [f"request failed: {f}" for f in check.failed]
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder without logging; a missing /favicon.ico is answered 204 (Chromium asks for one on its own
    and logs a 404 as a console error, which says nothing about the page: opened as file:// nothing is asked)."""

    def do_GET(self) -> None:
        if self.path == "/favicon.ico" and not (Path(self.directory) / "favicon.ico").exists():
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) in a thread; yields the base URL ending in '/'."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Browser:
    """One headless Chromium for many pages: ``with Browser() as b: b.check(url, shot)``."""

    def __enter__(self) -> Browser:
        from playwright.sync_api import sync_playwright

        self._profile = tempfile.TemporaryDirectory(prefix="limitlab-chromium-")
        self._pw = sync_playwright().start()
        try:
            # a persistent context so the empty profile folder is ours, created fresh for this browser
            self._context = self._pw.chromium.launch_persistent_context(
                self._profile.name, executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1200, "height": 900})
        except Exception:
            self._pw.stop()
            self._profile.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._context.close()
        finally:
            self._pw.stop()
            self._profile.cleanup()

    def check(self, url: str, screenshot: Path | None = None, timeout_s: float = 30.0) -> PageCheck:
        """Open ``url``, wait for its load event, collect images / console / failures, optionally screenshot."""
        result = PageCheck(url)
        page = self._context.new_page()
        page.on("console", lambda m: result.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: result.page_errors.append(str(e)))
        page.on("requestfailed", lambda r: result.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and result.failed.append(f"{r.url} (HTTP {r.status})"))
        try:
            response = page.goto(url, wait_until="load", timeout=timeout_s * 1000)
            if response is None:
                result.failed.append(f"{url} (no response)")
            result.images = page.evaluate(_IMAGES_JS)
            result.links = page.evaluate("Array.from(document.querySelectorAll('a[href]'), a => a.href)")
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
                result.screenshot = screenshot
        finally:
            page.close()
        return result
