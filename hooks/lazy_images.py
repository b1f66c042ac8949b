"""MkDocs hook: images load lazily (`loading="lazy"`), so figures further down a page are fetched
only when the reader scrolls to them and never hold up the page's `load` event."""

import re

IMAGE_WITHOUT_LOADING = re.compile(r"<img(?![^>]*\sloading=)")


def on_page_content(html: str, page, config, files) -> str:
    return IMAGE_WITHOUT_LOADING.sub('<img loading="lazy"', html)
