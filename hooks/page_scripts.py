"""MkDocs hook: give each page the Mermaid and MathJax scripts it needs, and no others.

hooks/drawing.py draws diagrams and equations when the site is built; what it could not draw
(on a machine without Chromium or Node) is drawn in the reader's browser, as follows.

Both libraries are served by the site itself (scripts/vendor_js.sh puts them in
docs/assets/vendor/). A page with a diagram gets Mermaid, a page with an equation gets MathJax;
every other page loads neither, so it stays small. Each comes with a small loader
(docs/javascripts/) that fetches the library only after the page's `load` event: the text is
there at once, diagrams and equations a moment later. Material draws the diagrams with the
global `mermaid` (without one it would fetch Mermaid from a CDN), so the Mermaid loader goes
before Material's bundle; the MathJax configuration uses Material's `document$`, so it goes after.

Every page with search also gets docs/javascripts/search-on-demand.js (before the bundle), so
the search index is fetched when the reader reaches for search, not at every page load.
"""

import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.utils import get_relative_url

VENDOR = Path("assets/vendor")
# An equation still in TeX: hooks/drawing.py typesets the others when the site is built.
UNDRAWN_MATH = re.compile(r'class="arithmatex">\\[(\[]')
BUNDLE = re.compile(r'<script src="[^"]*assets/javascripts/bundle\.[^"]*"></script>')


def _vendored(docs_dir: Path, library: str, entry: str) -> str:
    """The site path of a vendored library's entry file, e.g. assets/vendor/mermaid-11.x/mermaid.min.js."""
    found = sorted((docs_dir / VENDOR).glob(f"{library}-*/{entry}"))
    if not found:
        raise PluginError(f"{library} is missing from docs/{VENDOR}: run scripts/vendor_js.sh (or `make serve`)")
    return found[-1].relative_to(docs_dir).as_posix()


def on_post_page(output: str, page, config) -> str:
    docs_dir = Path(config["docs_dir"])

    def src(path: str) -> str:
        return get_relative_url(path, page.url)

    if 'data-md-component="search"' in output:
        # Holds Material's request for the search index until the reader reaches for search.
        search = f'<script src="{src("javascripts/search-on-demand.js")}"></script>\n'
        output, count = BUNDLE.subn(lambda m: search + m.group(0), output, count=1)
        if count != 1:
            raise PluginError(f"{page.file.src_uri}: Material's bundle script not found")
    if 'class="mermaid"' in output:
        mermaid = (
            f'<script src="{src("javascripts/mermaid-loader.js")}" '
            f'data-src="{src(_vendored(docs_dir, "mermaid", "mermaid.min.js"))}"></script>\n'
        )
        output, count = BUNDLE.subn(lambda m: mermaid + m.group(0), output, count=1)
        if count != 1:
            raise PluginError(f"{page.file.src_uri}: Material's bundle script not found")
    if UNDRAWN_MATH.search(output):
        mathjax = (
            f'<script src="{src("javascripts/mathjax-config.js")}" '
            f'data-src="{src(_vendored(docs_dir, "mathjax", "tex-chtml.js"))}"></script>\n'
        )
        output = output.replace("</body>", mathjax + "</body>", 1)
    return output
