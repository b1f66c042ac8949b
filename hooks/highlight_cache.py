"""MkDocs hook: each code block coloured once, not on every build.

Pygments colours code token by token, in Python: under the profiler, 3.9 s of a 10 s warm build,
most of it for the example scripts that the pages show. Its HTML depends only on the block, the
block's options and the highlighter's settings, so it is kept in .cache/highlight/, one file per
block, named by the hash of all of them and of Pygments' and pymdown-extensions' versions. A
build colours only the blocks that changed. A block whose HTML holds a placeholder of the
Markdown instance (a title given as HTML) is not kept: the placeholder means nothing to another
build.

Pygments also wraps every name (class "n"), run of spaces ("w"), punctuation mark ("p") and
operator ("o") in a span of its own. The theme draws names in the code's plain colour, spaces not
at all, and punctuation and operators in a lighter grey. On a page that shows a whole script,
those spans are over half of its elements, each one more for the browser to style and lay out at
load. With Lighthouse's CPU slowdown at 2.3 (as slow as this project's machines have been),
dropping the punctuation and operator spans took the total blocking time of the poetry,
self-play and diffusion pages from 72-250 ms to 64-128 ms. So those spans go and their text
stays, drawn in the code's plain colour; keywords, strings, numbers, comments, built-ins and
operator words (`in`, `not`) keep their colours.
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
UNSTYLED_TOKEN = re.compile(r'<span class="[nwpo]">([^<]*)</span>')


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
