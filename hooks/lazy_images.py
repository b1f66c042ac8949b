"""MkDocs hook: images load lazily and are sized.

- `loading="lazy"`: figures further down a page are fetched only when the reader scrolls to them
  and never hold up the page's `load` event.
- `width` and `height` from the image file itself: the browser keeps the figure's room before
  the figure arrives, so nothing on the page moves when it does (Material's CSS still scales it
  to the column: `max-width: 100%; height: auto`).
"""

import posixpath
import re
import struct
from urllib.parse import unquote

IMAGE = re.compile(r"<img\b[^>]*>")
SOURCE = re.compile(r'\ssrc="([^"]+)"')


def image_size(path: str) -> tuple[int, int]:
    """Width and height in pixels: a PNG's from its header, other images' through Pillow."""
    with open(path, "rb") as image:
        head = image.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", head[16:24])
    from PIL import Image  # only for the rare other format: importing it costs a build 0.1 s

    with Image.open(path) as image:
        return image.size


def on_page_content(html: str, page, config, files) -> str:
    def sized(match: re.Match) -> str:
        tag = match.group(0)
        if " loading=" not in tag:
            tag = tag.replace("<img", '<img loading="lazy"', 1)
        source = SOURCE.search(tag)
        if " width=" in tag or " height=" in tag or source is None or "://" in source.group(1):
            return tag
        # The page's links are relative to its address (examples/digits-cnn/ -> ../../results/...).
        path = posixpath.normpath(posixpath.join(posixpath.dirname(page.url + "x"), unquote(source.group(1))))
        file = files.get_file_from_path(path)
        if file is None or file.abs_src_path is None or path.endswith(".svg"):
            return tag
        width, height = image_size(file.abs_src_path)
        return tag.replace("<img", f'<img width="{width}" height="{height}"', 1)

    return IMAGE.sub(sized, html)
