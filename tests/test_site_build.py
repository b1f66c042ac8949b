"""The site builds with `mkdocs build --strict` (every link and anchor checked, zero warnings), and
the built pages are what a reader's browser needs and nothing more."""

import re
import shutil
from types import SimpleNamespace

from conftest import skip_or_fail
from hooks import drawing
from hooks.page_scripts import UNDRAWN_MATH
from site_fixtures import build_site
from tools.site import DOCS, built_pages, chromium_missing, mermaid_blocks, page_id, source_of, source_pages


def test_strict_build_passes_without_a_warning():
    build = build_site()
    assert build.ok, f"`mkdocs build --strict` failed or warned:\n{build.log[-4000:]}"


def test_every_page_of_the_nav_is_built_from_its_markdown(built_site):
    pages = built_pages(built_site)
    names = [page_id(page) for page in pages]
    for expected in ("overview", "what-ml-can-do", "keep-in-mind", "why-hpc", "setup", "resources", "examples"):
        assert expected in names, f"{expected} is not among the built pages {names}"
    orphans = [page for page in pages if source_of(page) is None]
    assert not orphans, f"built pages without a Markdown source in docs/: {orphans}"
    never_built = sorted(set(source_pages()) - set(pages))  # the pages the browser tests visit
    assert not never_built, f"pages in docs/ that the build did not make: {never_built}"


def test_pages_arrive_drawn_and_load_mermaid_or_mathjax_only_for_what_is_left(built_site):
    # What the build machine cannot draw (no Chromium, say) stays a block for the reader's browser.
    can_draw = chromium_missing() is None and shutil.which("node") is not None
    checked = 0
    for page in built_pages(built_site):
        html = (built_site / page / "index.html").read_text()
        blocks = len(mermaid_blocks(source_of(page).read_text()))
        drawn, undrawn = html.count('<div class="diagram">'), html.count('<pre class="mermaid">')
        undrawn_math = UNDRAWN_MATH.search(html) is not None
        assert drawn + undrawn == blocks, f"{page_id(page)}: {blocks} mermaid blocks, {drawn} drawn and {undrawn} left on the page"
        if can_draw:
            assert not undrawn and not undrawn_math, f"{page_id(page)}: the build left diagrams ({undrawn}) or equations to the browser"
        loads_mermaid, loads_mathjax = "mermaid.min.js" in html, "tex-chtml.js" in html
        assert loads_mermaid == bool(undrawn), f"{page_id(page)}: loads Mermaid: {loads_mermaid}, diagrams left undrawn: {undrawn}"
        assert loads_mathjax == undrawn_math, f"{page_id(page)}: loads MathJax: {loads_mathjax}, equations left undrawn: {undrawn_math}"
        checked += 1
    assert checked, "no pages were checked"


def test_a_rebuild_finds_every_drawing_in_the_cache(built_site):
    # Drawings are kept by the hash of their source, so `mkdocs serve` redraws only what changed.
    if chromium_missing():
        skip_or_fail(f"the build could not draw diagrams: {chromium_missing()}")
    diagrams = drawing.MermaidDrawer()
    missing = []
    for page in built_pages(built_site):
        for source in mermaid_blocks(source_of(page).read_text()):
            if not (drawing.CACHE / f"{diagrams.key(source)}.html").is_file():
                missing.append(f"{page_id(page)}: {source[:60]!r}")
    assert not missing, f"diagrams not in {drawing.CACHE}: {missing}"


def test_every_image_is_sized_and_every_source_map_is_there(built_site):
    unsized = [
        f"{html.relative_to(built_site)}: {tag[:100]}"
        for html in built_site.rglob("*.html")
        for tag in re.findall(r"<img\b[^>]*>", html.read_text())
        if not re.search(r'\swidth="\d+"', tag) or not re.search(r'\sheight="\d+"', tag)
    ]
    assert not unsized, "images without width and height (the page moves when they arrive):\n" + "\n".join(unsized)
    missing_maps = [
        f"{script.relative_to(built_site)} -> {name}"
        for script in [*built_site.rglob("*.js"), *built_site.rglob("*.css")]
        for name in re.findall(r"[#@] sourceMappingURL=(\S+)", script.read_text(errors="replace"))
        if not name.startswith("data:") and not (script.parent / name).is_file()
    ]
    assert not missing_maps, f"source maps named but not in the site: {missing_maps}"


def test_no_page_asks_another_host_for_scripts_styles_or_fonts(built_site):
    # Links to other sites are fine; what the browser fetches by itself must be local.
    fetched = re.compile(r'<(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href)="(https?:)?//[^"]*"', re.I)
    offenders = {}
    for html in built_site.rglob("*.html"):
        found = [m.group(0) for m in fetched.finditer(html.read_text()) if "rel=\"canonical\"" not in m.group(0)]
        if found:
            offenders[html.relative_to(built_site).as_posix()] = found[:3]
    assert not offenders, f"pages that fetch from another host: {offenders}"


def test_the_burgers_equation_is_on_the_page_inline_and_displayed():
    source = (DOCS / "what-ml-can-do.md").read_text()
    inline = re.findall(r"(?<!\$)\$(?!\$)([^$\n]+)\$", source)
    display = re.findall(r"^\$\$\n(.+?)\n\$\$$", source, flags=re.S | re.M)
    burgers = r"\frac{\partial u}{\partial t}"
    assert any(burgers in eq for eq in inline), "Burgers' equation is not written inline"
    assert any(burgers in eq for eq in display), "Burgers' equation is not written as a display equation"


def test_tex_that_does_not_parse_is_a_build_warning(caplog):
    # A warning stops `mkdocs build --strict`, naming the page; the equation stays for the browser.
    # (A diagram Mermaid cannot parse takes the same path, but would start a Chromium of its own.)
    if shutil.which("node") is None:
        skip_or_fail("typesetting at build time needs Node")
    page = SimpleNamespace(file=SimpleNamespace(src_uri="broken.md"))
    broken = '<p><span class="arithmatex">\\(\\frac{1}{\\)</span> and <span class="arithmatex">\\(\\nosuchmacro\\)</span></p>'
    drawings = drawing.Drawings(in_browser=False)
    try:
        with caplog.at_level("WARNING", logger="mkdocs"):
            html = drawings.page(broken, page)
    finally:
        drawings.close()
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 2 and all("broken.md" in warning for warning in warnings), f"warnings: {warnings}"
    assert html == broken, "an equation that could not be typeset was changed"


def test_search_indexes_the_same_words_without_parsing_each_highlighted_token(built_site):
    # hooks/search_text.py hands Material's search the pages with pygments' token spans replaced
    # by their text (parsing them was about 40% of a build). The index must not lose a word.
    from material.plugins.search.plugin import Parser

    from hooks.search_text import TOKEN_SPAN

    def sections(html: str) -> list[tuple]:
        parser = Parser()
        parser.feed(html)
        parser.close()
        return [(section.id, "".join(section.title), "".join(section.text)) for section in parser.data]

    longest = sorted(built_pages(built_site), key=lambda page: (built_site / page / "index.html").stat().st_size)[-3:]
    for page in longest:
        # What the search plugin reads: the page's content, without the theme's header and navigation.
        html = re.search(r'<article class="md-content__inner md-typeset">(.*)</article>', (built_site / page / "index.html").read_text(), re.S)[1]
        flattened, spans = TOKEN_SPAN.subn(r"\1", html)
        assert spans >= 1000, f"{page_id(page)}: only {spans} token spans, so this compares little; is the code still highlighted?"
        assert sections(flattened) == sections(html), f"{page_id(page)}: search would index other words without the token spans"


def test_a_code_block_is_coloured_once_and_read_back_as_pygments_coloured_it(tmp_path, monkeypatch):
    from markdown import Markdown
    from pymdownx.highlight import Highlight

    from hooks import highlight_cache

    monkeypatch.setattr(highlight_cache, "CACHE", tmp_path)
    highlight_cache.on_startup()
    highlighter, code = Highlight(Markdown()), "for epoch in range(3):\n    print(epoch + 1)\n"
    first = highlighter.highlight(code, "python", title="train.py")
    pygments_own = Highlight.uncached_highlight(highlighter, code, "python", title="train.py")
    assert all(f'<span class="{token}">' in pygments_own for token in "npo"), "Pygments no longer gives these tokens spans: nothing to drop"
    kept_colours = ('<span class="k">for</span> epoch <span class="ow">in</span> <span class="nb">range</span>(<span class="mi">3</span>):',
                    '<span class="nb">print</span>(epoch + <span class="mi">1</span>)')  # fmt: skip
    assert all(fragment in first for fragment in kept_colours), (
        "the kept HTML should keep the colours of keywords, built-ins and numbers, and drop the spans of names, spaces, "
        f"punctuation and operators:\n{first}"
    )
    assert re.sub(r"<[^>]+>", "", first) == re.sub(r"<[^>]+>", "", pygments_own), "the kept HTML shows other text than Pygments'"
    assert len(list(tmp_path.iterdir())) == 1, "the coloured block was not kept"
    (kept,) = tmp_path.iterdir()
    kept.write_text(first.replace("epoch", "EPOCH"))
    assert highlighter.highlight(code, "python", title="train.py") == first.replace("epoch", "EPOCH"), "a second build coloured the block again"
    highlighter.linenums = True
    assert highlighter.highlight(code, "python", title="train.py") != first.replace("epoch", "EPOCH"), "other settings read the same kept HTML"


def test_a_template_is_compiled_once_and_again_only_when_it_changes(tmp_path, monkeypatch):
    from jinja2 import DictLoader, Environment

    from hooks import template_cache

    monkeypatch.setattr(template_cache, "CACHE", tmp_path)
    compiled, compile_for_real = [], Environment.compile

    def compile_and_count(self, source, *args, **kwargs):
        compiled.append(source)
        return compile_for_real(self, source, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", compile_and_count)

    def build(template):  # each build makes its own environment, as mkdocs does
        env = template_cache.on_env(Environment(loader=DictLoader({"page.html": template})), config=None, files=None)
        return env.get_template("page.html").render(name="Puma")

    assert build("Hello {{ name }}") == "Hello Puma" and len(compiled) == 1
    assert build("Hello {{ name }}") == "Hello Puma" and len(compiled) == 1, "a second build compiled the unchanged template again"
    assert build("Hi {{ name }}") == "Hi Puma" and len(compiled) == 2, "a changed template was read back from the cache"
