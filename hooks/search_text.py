"""MkDocs hook: Material's search indexes each page's words without parsing every highlighted token.

Material's search plugin reads a page's HTML with Python's HTMLParser when the page's context is
made. On pages that show whole scripts, most of that HTML is syntax highlighting: one
`<span class="...">` per token, tens of thousands per page, and parsing them was about 40% of a
build. The index keeps the text and drops `<span>` tags, so this hook gives the search plugin the
page with those spans replaced by their text, and gives the reader the highlighted page:

1. `on_page_content`, after every other hook: keep the highlighted HTML aside, and let the page's
   content be the same HTML without the token spans;
2. Material's search indexes that content (in its `on_page_context`);
3. `on_page_context`, after the search plugin: put the highlighted HTML back, before the page
   is rendered, less the `data-search-*` attributes that the search plugin removes.

The search index is the same, byte for byte (built both ways on 2026-11-30), and
tests/test_site_build.py checks that the search plugin's parser finds the same words in the
longest pages either way. SITE_SEARCH_PARSES_TOKENS=1 turns this hook off, to compare.
"""

import os
import re

from mkdocs.plugins import event_priority

# A span with a class around plain text: what pygments writes for each token of highlighted code.
TOKEN_SPAN = re.compile(r'<span class="[\w -]*">([^<]*)</span>')
# What Material's search plugin removes from a page once it has indexed it.
SEARCH_ATTRIBUTES = re.compile(r'\s?data-search-\w+="[^"]+"')
PARSE_TOKENS_ENV = "SITE_SEARCH_PARSES_TOKENS"


@event_priority(-100)  # after the other hooks' changes to the page's HTML
def on_page_content(html: str, page, config, files) -> str:
    if os.environ.get(PARSE_TOKENS_ENV) == "1":
        return html
    page.highlighted_content = html
    return TOKEN_SPAN.sub(r"\1", html)


@event_priority(-100)  # after the search plugin (priority 0) has indexed the page
def on_page_context(context, page, config, nav):
    highlighted = getattr(page, "highlighted_content", None)
    if highlighted is not None:
        page.content = SEARCH_ATTRIBUTES.sub("", highlighted)
        del page.highlighted_content
    return context
