"""MkDocs hook: each code block coloured once, not on every build.

Pygments colours code token by token, in Python: under the profiler, 3.9 s of a 10 s warm build,
most of it for the example scripts that the pages show. Its HTML depends only on the block, the
block's options and the highlighter's settings, so it is kept in .cache/highlight/, one file per
block, named by the hash of all of them and of Pygments' and pymdown-extensions' versions. A
build colours only the blocks that changed. A block whose HTML holds a placeholder of the
Markdown instance (a title given as HTML) is not kept: the placeholder means nothing to another
build.

Pygments also wraps every name (class "n") and every run of spaces ("w") in a span of its own,
which the theme draws in the code's plain colour (names) or not at all (spaces). On a page that
shows a whole script, that is a fifth to a quarter of its elements, each one more for the
browser to lay out and for the theme's scripts to walk at load. Those spans go; their text stays.
"""

import hashlib
import json
import re
from importlib.metadata import version

from drawing import BUILD_CACHE, write_whole
from pymdownx.highlight import Highlight

CACHE = BUILD_CACHE / "highlight"
VERSIONS = {name: version(name) for name in ("pygments", "pymdown-extensions")}
MARKDOWN_PLACEHOLDER = "\x02"  # Markdown's stash placeholders start with STX
UNSTYLED_TOKEN = re.compile(r'<span class="[nw]">([^<]*)</span>')


def highlight_once(self, src, language, *args, **options):
    settings = {name: value for name, value in vars(self).items() if name != "md"}
    what = json.dumps([VERSIONS, UNSTYLED_TOKEN.pattern, settings, src, language, args, options], sort_keys=True, default=repr)
    kept = CACHE / f"{hashlib.sha256(what.encode()).hexdigest()}.html"
    if kept.is_file():
        return kept.read_text()
    coloured = UNSTYLED_TOKEN.sub(r"\1", Highlight.uncached_highlight(self, src, language, *args, **options))
    if MARKDOWN_PLACEHOLDER not in coloured:
        write_whole(kept, coloured)
    return coloured


def on_startup(**_):
    # `mkdocs serve` loads the hooks again for each build: wrap pymdown-extensions' method once.
    if not hasattr(Highlight, "uncached_highlight"):
        Highlight.uncached_highlight = Highlight.highlight
        Highlight.highlight = highlight_once
