"""The site builds with `mkdocs build --strict` (every link and anchor checked, zero warnings), and
the built pages are what a reader's browser needs and nothing more."""

import re

from site_fixtures import build_site
from tools.site import DOCS, built_pages, page_id, source_of


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


def test_pages_load_mermaid_and_mathjax_only_where_they_are_used(built_site):
    checked = 0
    for page in built_pages(built_site):
        html = (built_site / page / "index.html").read_text()
        source = source_of(page).read_text()
        has_diagram = re.search(r"^\s*`{3,}\s*mermaid\s*$", source, flags=re.M) is not None
        has_math = 'class="arithmatex"' in html
        loads_mermaid, loads_mathjax = "mermaid.min.js" in html, "tex-chtml.js" in html
        assert loads_mermaid == has_diagram, f"{page_id(page)}: loads Mermaid: {loads_mermaid}, has a diagram: {has_diagram}"
        assert loads_mathjax == has_math, f"{page_id(page)}: loads MathJax: {loads_mathjax}, has an equation: {has_math}"
        checked += 1
    assert checked, "no pages were checked"


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
