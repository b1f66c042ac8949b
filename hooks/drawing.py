"""MkDocs hook: diagrams and equations drawn when the site is built, so a page arrives drawn.

Each ```mermaid block becomes two inline SVGs, drawn by the site's own Mermaid in a headless
Chromium: one in Mermaid's light theme and one in its dark theme; docs/stylesheets/extra.css
shows the one that fits the palette the reader picked. Each equation becomes MathJax's SVG
output, typeset by the site's own MathJax in Node, with MathJax's MathML beside it for screen
readers (the "assistive MathML": the SVG is hidden from them); each glyph's outline is held
once per page and the equations refer to it. A page with drawings therefore
loads neither Mermaid nor MathJax (hooks/page_scripts.py adds them only where something is left
undrawn) and is complete at its first paint.

Every drawing is kept in .cache/drawings/, named by the hash of what it was drawn from (the
source, and the versions of the libraries and of this file's settings), so a build draws only
what is new: a warm build starts neither Chromium nor Node.

Where the build machine cannot draw (no Chromium, no Node, or MathJax's package missing from
.cache/npm-pack/), the page keeps the block as it was, the reader's browser draws it as before,
and the build log says so in one line. A diagram or an equation that does not parse is a
warning, so `mkdocs build --strict` stops on it.

Drawing happens in `on_post_page`, on the finished HTML: the search index is made before, from
the diagrams' and equations' source text, as it always was.
"""

import hashlib
import html
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mkdocs.exceptions import PluginError

log = logging.getLogger(f"mkdocs.hooks.{__name__}")

REPO = Path(__file__).resolve().parent.parent
# The folder of what a build keeps for the next one: these drawings, and the notebooks made from
# the example scripts (hooks/notebooks.py). Another folder gives a cold build (the benchmark's).
BUILD_CACHE = Path(os.environ.get("SITE_BUILD_CACHE", REPO / ".cache"))
CACHE = BUILD_CACHE / "drawings"
NPM_PACKS = REPO / ".cache" / "npm-pack"
VENDOR = REPO / "docs" / "assets" / "vendor"
TEX_TO_SVG = Path(__file__).with_name("tex_to_svg.js")
# Settings that change the drawings: a new value here draws everything again.
DRAWING_SETTINGS = "mermaid: default+dark, sequence 16px; mathjax: svg, fontCache none, assistive-mml; v1"

CHROMIUM = Path("/usr/bin/chromium")
# Flags that keep Chromium from calling home or hanging on a machine without internet (the
# tests and the benchmark launch it the same way: tools/site.py).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Set to 1 to leave every diagram and equation to the reader's browser (the fallback,
# as on a machine without Chromium; the tests check that it still works).
DRAW_IN_BROWSER_ENV = "SITE_DRAW_IN_BROWSER"

MERMAID_BLOCK = re.compile(r'<pre class="mermaid"><code>(.*?)</code></pre>', re.S)
MATH = re.compile(r'<(span|div) class="arithmatex">(\\[(\[])(.*?)(\\[)\]])</\1>', re.S)
# Mermaid's settings as Material for MkDocs gives them (its larger sequence-diagram fonts), with
# a theme for each palette.
MERMAID_THEMES = {"light": "default", "dark": "dark"}
MERMAID_RENDER = """async ([id, text, theme]) => {
  mermaid.initialize({ startOnLoad: false, theme,
    sequence: { actorFontSize: "16px", messageFontSize: "16px", noteFontSize: "16px" } });
  const { svg } = await mermaid.render(id, text);
  return svg;
}"""
# A glyph of MathJax's SVG output (fontCache "none": each equation holds its glyphs' outlines).
GLYPH = re.compile(r'<path data-c="([0-9A-F]+)" d="([^"]*)"([^>]*)></path>')
BODY = re.compile(r"<body\b[^>]*>")
SVG_ID = re.compile(r'\bid="([^"]+)"')


def chromium_missing() -> str | None:
    """Why Chromium cannot be driven here, or None when it can."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium; `make test` does it as root)"
    if importlib.util.find_spec("playwright") is None:  # found without importing it (a warm build needs none)
        return "the Python package playwright is missing (see requirements.txt)"
    return None


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


def _vendored(library: str) -> tuple[str, Path] | None:
    """The version and folder of a library in docs/assets/vendor/ (scripts/vendor_js.sh), if there."""
    found = sorted(VENDOR.glob(f"{library}-*"))
    return (found[-1].name.removeprefix(f"{library}-"), found[-1]) if found else None


def write_whole(path: Path, text: str) -> None:
    """Into the cache whole or not at all (a `mkdocs serve` and a test run may draw at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    partial.replace(path)


def drawing_path(key: str) -> Path:
    """Where the cache keeps the drawing (HTML) of that key."""
    return CACHE / f"{key}.html"


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join((DRAWING_SETTINGS, *parts)).encode()).hexdigest()


class MermaidDrawer:
    """Mermaid in one headless Chromium, in a thread of its own. As soon as a page's HTML holds a
    diagram that is not in the cache (`draw_soon`), Chromium starts (a second or more) and draws
    it there, while MkDocs goes on converting the other pages on another core; `draw` collects
    the drawing when the page is written. Playwright's synchronous API must be called from the
    thread that started it, so every call to it runs in that one thread."""

    def __init__(self):
        self.version, self.script, self.why_not = None, None, None
        vendored = _vendored("mermaid")
        if vendored is None:
            self.why_not = "Mermaid is missing from docs/assets/vendor/ (scripts/vendor_js.sh)"
        else:
            self.version, self.script = vendored[0], vendored[1] / "mermaid.min.js"
            self.why_not = chromium_missing()
        self._browser_thread = self._started = None
        self._drawing = {}  # key -> the drawing under way in Chromium's thread
        self._playwright = self._browser = self._page = None

    def key(self, source: str) -> str:
        return _key("mermaid", self.version or "", source)

    def draw_soon(self, key: str, source: str) -> None:
        """Start drawing a diagram in Chromium's thread (starting Chromium first if need be)."""
        if self._browser_thread is None:
            self._browser_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
            self._started = self._browser_thread.submit(self._start)
        if key not in self._drawing:
            self._drawing[key] = self._browser_thread.submit(self._draw, key, source)

    def _start(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._browser = launch_chromium(self._playwright)
        self._page = self._browser.new_page()
        self._page.add_script_tag(path=str(self.script))

    def draw(self, key: str, source: str) -> str:
        """Both drawings of one diagram, as HTML; raises ValueError when Mermaid cannot parse it."""
        self.draw_soon(key, source)
        self._started.result()  # Chromium's own error, if it could not start
        return self._drawing.pop(key).result()

    def _draw(self, key: str, source: str) -> str:
        from playwright.sync_api import Error as PlaywrightError

        drawings = []
        for palette, theme in MERMAID_THEMES.items():
            svg_id = f"mermaid-{key[:12]}-{palette}"
            try:
                svg = self._page.evaluate(MERMAID_RENDER, [svg_id, source, theme])
            except PlaywrightError as error:
                raise ValueError(str(error).splitlines()[0]) from None
            drawings.append(f'<div class="diagram__{palette}">{_own_ids(svg, svg_id)}</div>')
        return f'<div class="diagram">{"".join(drawings)}</div>'

    def _stop(self) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()
        self._playwright = self._browser = self._page = None

    def close(self):
        if self._browser_thread is not None:
            self._browser_thread.submit(self._stop).result()
            self._browser_thread.shutdown()
        self._browser_thread = self._started = None
        self._drawing.clear()


def _own_ids(svg: str, svg_id: str) -> str:
    """Mermaid names the parts of a drawing by their names in the source ("A", "L_A_B_0"), so
    two drawings on one page would share ids, and an edge's line and label share one already.
    Prefix each with the drawing's own id, and number the repeats."""
    for name in sorted(set(SVG_ID.findall(svg)) - {svg_id}, key=len, reverse=True):
        if name.startswith(svg_id):
            continue
        escaped = re.escape(name)
        svg = re.sub(rf'(url\(#|href="#){escaped}(?=[)"])', rf"\g<1>{svg_id}-{name}", svg)
        repeats = iter(range(1, svg.count(f'id="{name}"') + 1))
        svg = re.sub(
            rf'\bid="{escaped}"', lambda _: f'id="{svg_id}-{name}' + (f'-{n}"' if (n := next(repeats)) > 1 else '"'), svg
        )
    return svg


class MathJaxDrawer:
    """MathJax in one Node process (hooks/tex_to_svg.js), started at the first equation that is
    not in the cache."""

    def __init__(self):
        self.version, self.why_not, self.css = None, None, None
        vendored = _vendored("mathjax")
        self._process = None
        if vendored is None:
            self.why_not = "MathJax is missing from docs/assets/vendor/ (scripts/vendor_js.sh)"
            return
        self.version = vendored[0]
        self.components = REPO / ".cache" / f"mathjax-{self.version}" / "es5"
        self.pack = NPM_PACKS / f"mathjax-{self.version}.tgz"
        if shutil.which("node") is None:
            self.why_not = "Node is missing (apt-get install nodejs)"
        elif not self.components.is_dir() and not self.pack.is_file():
            self.why_not = f"{self.pack.relative_to(REPO)} is missing (`make clean setup` fetches it)"

    def key(self, tex: str, display: bool) -> str:
        return _key("mathjax", self.version or "", "display" if display else "inline", tex)

    def _start(self):
        if not self.components.is_dir():
            # MathJax's components for Node come from the package scripts/vendor_js.sh fetched.
            # Each process unpacks into its own folder and renames it whole: two builds that
            # start at once (the tests' workers, a `mkdocs serve`) both succeed, and one keeps its copy.
            unpacking = self.components.parent.with_name(f"{self.components.parent.name}.{os.getpid()}.partial")
            shutil.rmtree(unpacking, ignore_errors=True)
            with tarfile.open(self.pack) as pack:
                members = [m for m in pack.getmembers() if m.name.startswith("package/es5/")]
                for member in members:
                    member.name = member.name.removeprefix("package/")
                pack.extractall(unpacking, members=members, filter="data")
            try:
                unpacking.rename(self.components.parent)
            except OSError:  # another build unpacked it first
                shutil.rmtree(unpacking, ignore_errors=True)
        self._process = subprocess.Popen(
            ["node", str(TEX_TO_SVG), str(self.components)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.css = json.loads(self._process.stdout.readline())["css"]

    def draw(self, tex: str, display: bool) -> str:
        """The equation as MathJax's SVG output; raises ValueError when TeX cannot parse it."""
        if self._process is None:
            self._start()
        self._process.stdin.write(json.dumps({"tex": tex, "display": display}) + "\n")
        answer = json.loads(self._process.stdout.readline())
        if "error" in answer:
            raise ValueError(answer["error"])
        return answer["svg"]

    def stylesheet(self) -> str:
        """MathJax's CSS for its SVG output (kept in the cache beside the drawings)."""
        path = CACHE / _key("mathjax-css", self.version or "")
        if not path.is_file():
            if self._process is None:
                self._start()
            write_whole(path, self.css)
        return path.read_text()

    def close(self):
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait(timeout=10)
        self._process = None


class Drawings:
    """What one build drew, took from the cache or left to the browser."""

    def __init__(self, in_browser: bool):
        self.mermaid, self.mathjax = MermaidDrawer(), MathJaxDrawer()
        if in_browser:
            self.mermaid.why_not = self.mathjax.why_not = f"{DRAW_IN_BROWSER_ENV} is set"
        self.cached = 0
        self.drawn = {"diagram": 0, "equation": 0}
        self.seconds = {"diagram": 0.0, "equation": 0.0}  # what the build waited for them, starts included
        self.left = {"diagram": set(), "equation": set()}  # pages with something left undrawn

    def cached_or_drawn(self, kind: str, key: str, draw, page) -> str | None:
        path = drawing_path(key)
        if path.is_file():
            self.cached += 1
            return path.read_text()
        drawer = self.mermaid if kind == "diagram" else self.mathjax
        if drawer.why_not:
            self.left[kind].add(page.file.src_uri)
            return None
        started = time.perf_counter()
        try:
            drawing = draw()
        except ValueError as error:
            log.warning(f"{page.file.src_uri}: a {kind} that cannot be drawn: {error}")
            self.left[kind].add(page.file.src_uri)
            return None
        finally:
            self.seconds[kind] += time.perf_counter() - started
        write_whole(path, drawing)
        self.drawn[kind] += 1
        return drawing

    def look_ahead(self, content: str) -> None:
        """Start drawing this page's diagrams that are not in the cache, while MkDocs goes on."""
        if self.mermaid.why_not:
            return
        for match in MERMAID_BLOCK.finditer(content):
            source, key = self.diagram_source_and_key(match)
            if not drawing_path(key).is_file():
                self.mermaid.draw_soon(key, source)

    def diagram_source_and_key(self, match: re.Match) -> tuple[str, str]:
        """A ```mermaid block's source (MERMAID_BLOCK's match) and the key of its drawing."""
        source = html.unescape(match.group(1))
        return source, self.mermaid.key(source)

    def page(self, output: str, page) -> str:
        seen: dict[str, int] = {}

        def diagram(match: re.Match) -> str:
            source, key = self.diagram_source_and_key(match)
            drawing = self.cached_or_drawn("diagram", key, lambda: self.mermaid.draw(key, source), page)
            if drawing is None:
                return match.group(0)
            # The same diagram twice on a page: the second copy's ids must differ from the first's.
            seen[key] = seen.get(key, 0) + 1
            return drawing if seen[key] == 1 else drawing.replace(f"mermaid-{key[:12]}", f"mermaid-{key[:12]}-{seen[key]}")

        def equation(match: re.Match) -> str:
            tag, opening, tex, _closing = match.groups()
            tex, display = html.unescape(tex), opening == "\\["
            key = self.mathjax.key(tex, display)
            drawing = self.cached_or_drawn("equation", key, lambda: self.mathjax.draw(tex, display), page)
            if drawing is None:
                return match.group(0)
            return f'<{tag} class="arithmatex">{drawing}</{tag}>'

        output = MERMAID_BLOCK.sub(diagram, output)
        output = MATH.sub(equation, output)
        if 'jax="SVG"' in output:
            output = self.share_glyphs(output, page)
            stylesheet = f'<style id="mathjax-svg">{self.mathjax.stylesheet()}</style>\n'
            if "</head>" not in output:
                raise PluginError(f"{page.file.src_uri}: no </head> to put MathJax's stylesheet before")
            output = output.replace("</head>", stylesheet + "</head>", 1)
        return output

    @staticmethod
    def share_glyphs(output: str, page) -> str:
        """Each glyph's outline once per page: the equations refer to it (<use>), as MathJax's own
        "global" font cache does. On a page of 40 equations, 480 glyphs are 70 outlines."""
        glyphs: dict[str, str] = {}

        def use(match: re.Match) -> str:
            character, outline, rest = match.groups()
            name = "mjx-glyph-" + hashlib.sha256(outline.encode()).hexdigest()[:12]
            glyphs.setdefault(name, outline)
            return f'<use data-c="{character}" href="#{name}"{rest}></use>'

        output = GLYPH.sub(use, output)
        outlines = "".join(f'<path id="{name}" d="{outline}"></path>' for name, outline in glyphs.items())
        holder = f'<svg aria-hidden="true" style="display: none"><defs>{outlines}</defs></svg>'
        output, found = BODY.subn(lambda m: m.group(0) + holder, output, count=1)
        if not found:
            raise PluginError(f"{page.file.src_uri}: no <body> to put the equations' glyphs in")
        return output

    def close(self):
        self.mermaid.close()
        self.mathjax.close()
        if any(self.drawn.values()):
            new = " and ".join(f"{self.drawn[kind]} {kind}{'s' * (self.drawn[kind] != 1)} in {self.seconds[kind]:.1f} s" for kind in self.drawn if self.drawn[kind])
            log.info(f"drawing: drew {new}; {self.cached} drawings from {CACHE}")
        for kind, drawer in (("diagram", self.mermaid), ("equation", self.mathjax)):
            if self.left[kind] and drawer.why_not:
                pages = ", ".join(sorted(self.left[kind]))
                log.info(f"drawing: {kind}s left to the reader's browser on {pages}: {drawer.why_not}")


_build: Drawings | None = None


def on_pre_build(config):
    global _build
    _build = Drawings(in_browser=os.environ.get(DRAW_IN_BROWSER_ENV) == "1")


def on_page_content(content: str, page, config, files) -> str:
    _build.look_ahead(content)
    return content


def on_post_page(output: str, page, config) -> str:
    return _build.page(output, page)


def on_post_build(config):
    _build.close()


def on_build_error(error):
    if _build is not None:
        _build.close()
