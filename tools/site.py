"""The site as a reader gets it: the strict build, a local web server for it, a headless Chromium.

- `run_strict_build(folder)`: `mkdocs build --strict` into a folder, as `make build` runs it,
  with its log and how long it took (a build with any warning is not ok).
- `built_pages(site)`: every page of a built site, found from the build, not from a list;
  `source_pages()`: the pages a build makes, found from their Markdown before any build.
- `SiteServer(site)`: the folder served over HTTP on 127.0.0.1 (a free port) with caching
  forbidden, counting the bytes it sends, so a test or the benchmark can see what a page cost.
- `launch_chromium(playwright)`: headless Chromium, the Debian package at /usr/bin/chromium
  driven by Playwright (Playwright's own browser download is never used); `chromium_missing()`
  says why it cannot run here.
- `mermaid_blocks(markdown)`: the diagrams a page's Markdown holds.
- `RENDERED`, `FONTS_READY`, `OPEN_SHADOW_ROOTS`: what "fully rendered" means in a page (every
  diagram an <svg>, every equation typeset with visible characters), for tests and benchmark alike.

The tests' fixtures (tests/site_fixtures.py) and the benchmark (bench/site.py) use these, so the
benchmark measures exactly what the tests check.
"""

import functools
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# The build draws diagrams with the same Chromium, launched the same way (hooks/drawing.py).
from hooks.drawing import chromium_missing, launch_chromium

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
# Material draws each Mermaid diagram into a *closed* shadow root, which no script can look
# into. Run before the page's own scripts, this makes every shadow root open, so tests can find
# the <svg>.
OPEN_SHADOW_ROOTS = """
const attachShadow = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attachShadow.call(this, Object.assign({}, init, { mode: "open" }));
};
"""
# MathJax's HTML output draws each character with a CSS rule (`content` of mjx-c::before); an
# equation whose rules are missing is typeset, yet shows nothing.
INVISIBLE_MATH_CHARACTERS = """() => [...document.querySelectorAll("mjx-c")]
  .filter((c) => ["none", "normal", ""].includes(getComputedStyle(c, "::before").content)).length"""
# True once every diagram is an <svg> and every equation is typeset with visible characters:
# what "rendered" means here (wait for document.fonts.ready after it for the glyphs' fonts).
RENDERED = """() => {
  const diagrams = [...document.querySelectorAll(".mermaid")];
  const equations = [...document.querySelectorAll(".arithmatex")];
  return diagrams.every((d) => d.shadowRoot && d.shadowRoot.querySelector("svg"))
    && equations.every((e) => e.querySelector(":scope > mjx-container"))
    && (%s)() === 0;
}""" % INVISIBLE_MATH_CHARACTERS
FONTS_READY = "() => document.fonts.ready.then(() => performance.now())"


MERMAID_FENCE = re.compile(r"^([ \t]*)`{3,}[ \t]*mermaid[ \t]*\n(.*?)^\1`{3,}[ \t]*$", re.S | re.M)


def mermaid_blocks(markdown: str) -> list[str]:
    """The text of each ```mermaid block of a page's Markdown, as Mermaid gets it."""
    return [textwrap.dedent(match.group(2)).rstrip("\n") for match in MERMAID_FENCE.finditer(markdown)]


@dataclass
class Build:
    ok: bool
    site: Path
    log: str
    seconds: float = 0.0


def run_strict_build(destination: Path, extra_env: dict[str, str] | None = None) -> Build:
    """`mkdocs build --strict` into `destination`, as a reader's `make build` would run it."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", **(extra_env or {}))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-d", str(destination)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    log = done.stdout + done.stderr
    ok = done.returncode == 0 and "WARNING" not in log
    return Build(ok=ok, site=destination, log=log, seconds=seconds)


def built_pages(site: Path) -> list[str]:
    """Every page of a built site, as URL paths ("", "setup/", ...): its HTML files but 404.html."""
    pages = []
    for html in sorted(site.rglob("*.html")):
        relative = html.relative_to(site).as_posix()
        if relative == "404.html":
            continue
        pages.append(relative.removesuffix("index.html"))
    return pages


def source_pages() -> list[str]:
    """The pages a build makes, as URL paths, from their Markdown in docs/ ("setup/" from
    docs/setup.md, "examples/" from docs/examples/index.md, "" from docs/index.md), sorted."""
    pages = []
    for markdown in DOCS.rglob("*.md"):
        parts = markdown.relative_to(DOCS).with_suffix("").parts
        pages.append("".join(f"{part}/" for part in (parts[:-1] if parts[-1] == "index" else parts)))
    return sorted(pages)


def source_of(page: str) -> Path | None:
    """The Markdown file a page was built from ("setup/" -> docs/setup.md, "" -> docs/index.md)."""
    stem = page.rstrip("/")
    candidates = [DOCS / "index.md"] if not stem else [DOCS / f"{stem}.md", DOCS / stem / "index.md"]
    return next((path for path in candidates if path.is_file()), None)


def page_id(page: str) -> str:
    return page.rstrip("/") or "overview"


class CountingHandler(SimpleHTTPRequestHandler):
    """Serves the built site, silently, and adds up what it sends."""

    def log_message(self, format, *args):
        pass

    def end_headers(self):
        # A cold cache on every load: nothing may be reused between page visits.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def copyfile(self, source, outputfile):
        counter = _CountingWriter(outputfile, self.server)
        super().copyfile(source, counter)


class _CountingWriter:
    def __init__(self, stream, server):
        self.stream, self.server = stream, server

    def write(self, data):
        with self.server.lock:
            self.server.bytes_sent += len(data)
        return self.stream.write(data)


class SiteServer:
    """A local HTTP server for a folder, on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, folder: Path):
        handler = functools.partial(CountingHandler, directory=str(folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.lock = threading.Lock()
        self.httpd.bytes_sent = 0
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset_bytes(self) -> None:
        with self.httpd.lock:
            self.httpd.bytes_sent = 0

    @property
    def bytes_sent(self) -> int:
        with self.httpd.lock:
            return self.httpd.bytes_sent
