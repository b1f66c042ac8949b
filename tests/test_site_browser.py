"""Every page of the built site in a real headless Chromium, from a server on 127.0.0.1.

Each page is loaded once, with a cold cache, and then checked by the tests below: nothing goes
wrong in the console or on the network, nothing is asked of another host, every diagram arrives
as an inline SVG and every equation typeset (drawn when the site was built: the page loads
neither Mermaid nor MathJax), every highlight a <mark>, every code block copyable, and axe-core
finds no accessibility problem beyond the theme's own (listed below, with the reason). One more
test builds a one-page site the way a machine without Chromium does, and watches the reader's
browser draw it instead.
Screenshots for a person to look at go to screenshots/ at the repository root.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from conftest import REPO
from site_fixtures import build_site
from hooks.drawing import DRAW_IN_BROWSER_ENV
from tools.site import FONTS_READY, OPEN_SHADOW_ROOTS, RENDERED, SiteServer, mermaid_blocks, source_of

pytestmark = pytest.mark.browser

SCREENSHOTS = REPO / "screenshots"
RENDER_TIMEOUT_MS = 10_000
# Findings that come from the theme's markup, not from our content. Each is allowed only on the
# elements named here.
THEME_LEVEL_VIOLATIONS = {
    # Material (9.8) puts each code block's copy button in an unlabelled <nav>, so a page with
    # code has several landmarks with the same (empty) name, the section navigation among them.
    "landmark-unique": ("nav[", ".md-nav", ".md-code__nav"),
    # Material's content tabs: the row of tab labels scrolls when the labels do not fit, and the
    # labels themselves are not focusable (the radio buttons behind them are).
    "scrollable-region-focusable": (".tabbed-labels",),
}
# Others that axe-core reports on Material's defaults are fixed: the search dialog's name in
# hooks/theme_fixes.py (aria-dialog-name); in docs/stylesheets/extra.css, grey code comments and
# the footer's copyright line at 4.47:1 (color-contrast), and links told apart from text by
# colour alone (link-in-text-block).


CODE_SAMPLE = "data-axe-code-sample"
# Marks the first token of each highlighting class (comment, keyword, string, ...) in the code
# blocks, and returns how many it marked.
MARK_ONE_TOKEN_OF_EACH_KIND = """() => {
  const seen = new Set();
  for (const token of document.querySelectorAll("article pre > code span[class]")) {
    if (!token.textContent.trim() || seen.has(token.className)) continue;
    seen.add(token.className);
    token.setAttribute("%s", "");
  }
  return seen.size;
}""" % CODE_SAMPLE
# Turns every other token into plain text, keeping the code blocks' HTML to put back.
TOKENS_TO_TEXT = """() => {
  window.codeBlocksBefore = [...document.querySelectorAll("article pre > code")].map((code) => code.innerHTML);
  for (const token of document.querySelectorAll("article pre > code span:not([%s])")) {
    if (token.isConnected && !token.querySelector("[%s]")) token.replaceWith(token.textContent);
  }
}""" % (CODE_SAMPLE, CODE_SAMPLE)
PUT_TOKENS_BACK = """() => document.querySelectorAll("article pre > code")
  .forEach((code, number) => { code.innerHTML = window.codeBlocksBefore[number]; })"""


def mermaid_labels(block: str) -> list[str]:
    """The quoted labels of a diagram's nodes, edges and groups, as text (line breaks dropped)."""
    return [re.sub(r"<br\s*/?>", " ", label) for label in re.findall(r'"([^"\n]+)"', block)]


# The text a drawing shows: its labels, without its stylesheet.
SVG_TEXT = """(svg) => {
  const copy = svg.cloneNode(true);
  copy.querySelectorAll("style").forEach((style) => style.remove());
  return copy.textContent;
}"""


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


@dataclass
class Visit:
    page: object
    url: str
    source: str
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requested_urls: list[str] = field(default_factory=list)


def strip_code(markdown: str) -> str:
    """Markdown without code (fenced and inline) and HTML comments, where `==` is no highlight."""
    without_fences = re.sub(r"^([ \t]*)(`{3,}|~{3,}).*?^\1\2[ \t]*$", "", markdown, flags=re.S | re.M)
    without_comments = re.sub(r"<!--.*?-->", "", without_fences, flags=re.S)
    return re.sub(r"`[^`\n]*`", "", without_comments)


# pymdownx.mark's ==highlight==: not part of a longer run of "=" (such as a content tab's "==="),
# no space just inside the marks, within one paragraph.
HIGHLIGHT = re.compile(r"(?<!=)==(?=[^\s=])(?:(?!\n[ \t]*\n).)+?(?<=[^\s=])==(?!=)", re.S)


@pytest.fixture(scope="module")
def visit(site_page, browser, site_server):
    """The page loaded with a cold cache and rendered, with what happened on the way."""
    if site_page is None:
        build = build_site()
        pytest.fail("the site has no pages" if build.ok else f"the strict build failed:\n{build.log[-4000:]}")
    source = source_of(site_page)
    assert source is not None, f"no Markdown source in docs/ for the built page {site_page!r}"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    result = Visit(page=page, url=site_server.url + site_page, source=source.read_text())
    page.on("console", lambda m: m.type == "error" and result.console_errors.append(f"{m.text} ({m.location})"))
    page.on("pageerror", lambda error: result.console_errors.append(f"uncaught: {error}"))
    context.on("request", lambda r: result.requested_urls.append(r.url))
    context.on("requestfailed", lambda r: result.failed_requests.append(f"{r.url}: {r.failure}"))
    context.on("response", lambda r: r.status >= 400 and result.failed_requests.append(f"{r.url}: HTTP {r.status}"))

    page.goto(result.url, wait_until="load")
    try:
        page.wait_for_function(RENDERED, timeout=RENDER_TIMEOUT_MS)
    except Exception:
        pass  # the tests below say what stayed unrendered
    page.evaluate(FONTS_READY)
    page.wait_for_load_state("networkidle")
    yield result
    context.close()


def test_page_logs_no_console_error(visit):
    assert not visit.console_errors, "\n".join(visit.console_errors)


def test_page_requests_only_the_local_server_and_none_fails(visit):
    foreign = [
        url for url in visit.requested_urls if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert not foreign, f"requests that leave 127.0.0.1: {foreign}"
    assert not visit.failed_requests, f"failed requests: {visit.failed_requests}"


def test_every_mermaid_diagram_arrives_as_an_inline_svg_with_its_labels_in_both_palettes(visit):
    blocks = mermaid_blocks(visit.source)
    for scheme, palette in (("default", "light"), ("slate", "dark")):
        diagrams = visit.page.evaluate(
            """(scheme) => {
                 const before = document.body.getAttribute("data-md-color-scheme");
                 document.body.setAttribute("data-md-color-scheme", scheme);
                 const shown = [...document.querySelectorAll("article .diagram")].map((d) =>
                   [...d.querySelectorAll(":scope > div")].filter((c) => getComputedStyle(c).display !== "none")
                     .map((c) => [c.className, c.querySelector(":scope > svg") && (%s)(c.querySelector(":scope > svg"))]));
                 document.body.setAttribute("data-md-color-scheme", before);
                 return shown;
               }""" % SVG_TEXT,
            scheme,
        )
        assert len(diagrams) == len(blocks), f"{len(blocks)} mermaid blocks in the source, {len(diagrams)} drawn diagrams on the page"
        for block, shown in zip(blocks, diagrams):
            assert [name for name, _ in shown] == [f"diagram__{palette}"], f"{palette} palette shows {shown and [n for n, _ in shown]} for {block[:60]!r}"
            text = shown[0][1] or ""
            missing = [label for label in mermaid_labels(block) if squeeze(label) not in squeeze(text)]
            assert not missing, f"labels missing from the {palette} drawing of {block[:60]!r}: {missing}"


def test_no_page_loads_mermaid_or_mathjax_when_everything_is_drawn(visit):
    loaded = [url for url in visit.requested_urls if re.search(r"/(mermaid[^/]*|tex-[a-z]+)\.js$", url)]
    assert not loaded, f"the page arrived drawn, yet it loaded {loaded}"


def test_every_equation_is_typeset_for_eyes_and_screen_readers(visit):
    total, typeset, spoken, missing_glyphs, raw = visit.page.evaluate(
        """() => {
             const all = [...document.querySelectorAll(".arithmatex")];
             const drawn = (e) => parseFloat(e.querySelector(":scope > mjx-container > svg")?.getAttribute("width")) > 0;
             const mathml = (e) => e.querySelector(":scope > mjx-container > mjx-assistive-mml > math");
             const glyphs = [...document.querySelectorAll("mjx-container use")].map((u) => u.getAttribute("href"));
             const article = document.querySelector("article").cloneNode(true);
             article.querySelectorAll("pre, code, mjx-container").forEach((e) => e.remove());
             return [all.length, all.filter(drawn).length, all.filter(mathml).length,
                     glyphs.filter((href) => !document.getElementById(href.slice(1))),
                     article.textContent.match(/\\\\\\(|\\\\\\[|\\$\\$/g) || []];
           }"""
    )
    assert typeset == total, f"{total - typeset} of {total} equations are not drawn (no SVG of any width)"
    assert spoken == total, f"{total - spoken} of {total} equations have no MathML for screen readers"
    assert not missing_glyphs, f"equations use glyphs the page does not hold: {sorted(set(missing_glyphs))[:5]}"
    assert not raw, f"TeX delimiters shown as text: {raw}"


def test_every_highlight_is_a_mark(visit):
    in_source = len(HIGHLIGHT.findall(strip_code(visit.source)))
    marks, literal = visit.page.evaluate(
        """() => {
             const article = document.querySelector("article").cloneNode(true);
             const marks = article.querySelectorAll("mark:not([data-md-highlight])").length;
             article.querySelectorAll("pre, code").forEach((e) => e.remove());
             return [marks, article.textContent.match(/==\\S[^=]*\\S==/g) || []];
           }"""
    )
    assert not literal, f"highlights shown as literal text: {literal}"
    assert marks == in_source, f"{in_source} ==highlights== in the source, {marks} <mark> on the page"


def test_every_code_block_has_a_copy_button(visit):
    blocks, without = visit.page.evaluate(
        """() => {
             const blocks = [...document.querySelectorAll("article pre > code")];
             const copy = ':scope > nav > button[data-md-type="copy"], :scope > .md-clipboard';
             return [blocks.length, blocks.filter((c) => !c.parentElement.querySelector(copy))
                                          .map((c) => c.textContent.slice(0, 80))];
           }"""
    )
    assert not without, f"{len(without)} of {blocks} code blocks have no copy button: {without}"


def test_page_has_no_accessibility_violation_beyond_the_themes_own(visit):
    from axe_playwright_python.sync_playwright import Axe

    # All rules on the page but inside code blocks; there, the contrast of one token of each kind.
    # axe walks the whole page even where told to skip, and a lesson's thousands of highlighted
    # tokens cost it seconds: so while it runs, the other tokens are plain text (put back after).
    samples = visit.page.evaluate(MARK_ONE_TOKEN_OF_EACH_KIND)
    visit.page.evaluate(TOKENS_TO_TEXT)
    try:
        # target-size (WCAG 2.2, 2.5.8: targets of at least 24 x 24 px) is off in axe by default
        # and on in Lighthouse's accessibility score. resultTypes: every rule still runs on every
        # element, but only violations are reported in full: half the time (4 pages, 3 runs each).
        everything = {"rules": {"target-size": {"enabled": True}}, "resultTypes": ["violations"]}
        violations = Axe().run(visit.page, context={"exclude": [["pre > code"]]}, options=everything).response["violations"]
        if samples:
            only_contrast = {"runOnly": ["color-contrast"], "resultTypes": ["violations"]}
            violations += Axe().run(visit.page, context=f"[{CODE_SAMPLE}]", options=only_contrast).response["violations"]
    finally:
        visit.page.evaluate(PUT_TOKENS_BACK)
    ours = []
    for violation in violations:
        allowed = THEME_LEVEL_VIOLATIONS.get(violation["id"], ())
        for node in violation["nodes"]:
            target = " ".join(map(str, node["target"]))
            if not any(selector in target for selector in allowed):
                ours.append(f"{violation['id']} ({violation['impact']}): {target}: {node['failureSummary']}")
    assert not ours, "axe-core found:\n" + "\n".join(ours)


# --- the site as a whole --------------------------------------------------------------------------


def test_searching_burgers_finds_its_page_and_the_index_is_fetched_only_then(browser, site_server):
    context = browser.new_context()
    page = context.new_page()
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(site_server.url, wait_until="networkidle")
    fetched_early = [url for url in requested if url.endswith("search_index.json")]
    page.locator("input.md-search__input").click()
    page.keyboard.type("Burgers")
    results = page.locator("a.md-search-result__link")
    results.first.wait_for(timeout=10_000)
    found = [link.get_attribute("href") for link in results.all()]
    context.close()
    assert any("what-ml-can-do/" in href for href in found), f"search results for 'Burgers': {found}"
    assert not fetched_early, "the search index was fetched before the reader reached for search"


def test_screenshots_show_the_rendered_overview_and_burgers_passage(browser, site_server):
    SCREENSHOTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()

    page.goto(site_server.url, wait_until="load")
    page.wait_for_function(RENDERED, timeout=RENDER_TIMEOUT_MS)
    page.evaluate(FONTS_READY)
    page.screenshot(path=SCREENSHOTS / "overview.png", full_page=True)

    page.goto(site_server.url + "what-ml-can-do/", wait_until="load")
    page.wait_for_function(RENDERED, timeout=RENDER_TIMEOUT_MS)
    page.evaluate(FONTS_READY)
    heading = page.locator("h2", has_text="Burgers")
    passage_end = heading.locator("xpath=following-sibling::ul[1]")
    top, bottom = heading.bounding_box(), passage_end.bounding_box()
    clip = {"x": top["x"] - 16, "y": top["y"] - 16, "width": 800, "height": bottom["y"] + bottom["height"] - top["y"] + 32}
    page.screenshot(path=SCREENSHOTS / "burgers.png", full_page=True, clip=clip)
    display_equations = page.locator("div.arithmatex > mjx-container").count()
    context.close()

    assert display_equations >= 1, "the Burgers passage has no typeset display equation"
    for name in ("overview.png", "burgers.png"):
        assert (SCREENSHOTS / name).stat().st_size > 10_000, f"screenshots/{name} is (nearly) empty"



FALLBACK_PAGE = r"""# Drawn in the browser

```mermaid
flowchart LR
    A["data"] --> B["model"]
```

Inline, \(u_t + u\,u_x = \nu\,u_{xx}\), and displayed:

$$
\frac{\partial u}{\partial t} = \nu\,\frac{\partial^2 u}{\partial x^2}
$$
"""


def test_a_build_that_cannot_draw_leaves_it_to_the_browser_and_says_so(browser, tmp_path, monkeypatch, caplog):
    # A one-page site built as a machine without Chromium or Node builds it: the page keeps its
    # mermaid block and its TeX, loads the site's own Mermaid and MathJax, and they draw it.
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(FALLBACK_PAGE)
    for shared in ("assets", "javascripts", "stylesheets"):
        (docs / shared).symlink_to(REPO / "docs" / shared)
    monkeypatch.setenv(DRAW_IN_BROWSER_ENV, "1")
    monkeypatch.chdir(REPO)
    config = load_config(
        str(REPO / "mkdocs.yml"),
        docs_dir=str(docs),
        site_dir=str(tmp_path / "site"),
        nav=[{"Drawn in the browser": "index.md"}],
        hooks=["hooks/drawing.py", "hooks/page_scripts.py"],
        strict=True,
    )
    with caplog.at_level("INFO", logger="mkdocs"):
        build(config)
    said = [record.getMessage() for record in caplog.records if "left to the reader's browser" in record.getMessage()]
    assert len(said) == 2, f"the build log does not say that diagrams and equations are left to the browser: {said}"

    context = browser.new_context()
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    with SiteServer(tmp_path / "site") as server:
        page.goto(server.url, wait_until="load")
        try:
            page.wait_for_function(RENDERED, timeout=RENDER_TIMEOUT_MS)
        except Exception:
            pass  # the assertion says what stayed undrawn
        drawn = page.evaluate(
            """() => [[...document.querySelectorAll(".mermaid")].map((d) => d.shadowRoot?.querySelector("svg")).map((svg) => svg && (%s)(svg)),
                      document.querySelectorAll(".arithmatex > mjx-container").length]""" % SVG_TEXT
        )
    context.close()
    assert drawn == [["datamodel"], 2], f"drawn in the browser: diagrams {drawn[0]}, equations {drawn[1]} (expected ['datamodel'] and 2)"
