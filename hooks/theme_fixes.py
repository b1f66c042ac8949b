"""MkDocs hook: fixes to Material's own markup that accessibility checkers find on every page.

- The search overlay is a `role="dialog"` element without a name (axe rule aria-dialog-name;
  Lighthouse's accessibility audit fails it): it is named after the search field's label.

A fix is a small change to the theme's HTML, not a copy of its template, so it keeps up with the
theme; when the theme's markup changes so that a fix no longer applies, the build stops and says
so (and if the theme has fixed it itself, the fix can go).
"""

from mkdocs.exceptions import PluginError

SEARCH_DIALOG = '<div class="md-search" data-md-component="search" role="dialog">'


def on_post_page(output: str, page, config) -> str:
    if 'data-md-component="search"' not in output:
        return output  # no search on this site
    if SEARCH_DIALOG not in output:
        raise PluginError(f"{page.file.src_uri}: Material's search dialog has changed; see hooks/theme_fixes.py")
    named = SEARCH_DIALOG.replace('role="dialog"', 'role="dialog" aria-label="Search"')
    return output.replace(SEARCH_DIALOG, named, 1)
