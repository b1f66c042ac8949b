"""Benchmark of the site: how long the strict build takes, and what each page costs a reader.

Build: `mkdocs build --strict`, the median of 5 runs (each a fresh process, as `make build`),
with the drawings of diagrams and equations and the examples' notebooks in their cache
(.cache/drawings and .cache/notebooks, as after any earlier build), and one more build with an
empty cache, which draws and converts them all (hooks/drawing.py, hooks/notebooks.py).
Pages: every page of that build, served from 127.0.0.1 and loaded in headless Chromium with a
cold cache (a new browser context each time, and a server that forbids caching), the median of 3
loads: the time to the `load` event, the time until every diagram is an <svg> and every equation
is typeset with its fonts, and the bytes the server sent for the page and everything it asked for
(uncompressed: this server does not gzip).

The build, server, browser and "rendered" condition are those of the tests (tools/site.py).
"""

import math
import statistics
import tempfile
from pathlib import Path

from bench.table import Row
from tools.site import (
    OPEN_SHADOW_ROOTS,
    RENDERED,
    SiteServer,
    built_pages,
    chromium_missing,
    launch_chromium,
    page_id,
    run_strict_build,
)

# Records in the page itself when it is first fully rendered (fonts included), so the time does
# not include the benchmark's own round trips to the browser; and whether it already was at the
# `load` event (diagrams and equations drawn at build time: nothing left to draw after it).
RECORD_RENDERED = """(() => {
  const rendered = %s;
  window.addEventListener("load", () => { window.renderedAtLoad = rendered(); });
  const check = () => {
    if (document.readyState !== "loading" && rendered()) {
      document.fonts.ready.then(() => { window.renderedAt = performance.now(); });
    } else {
      requestAnimationFrame(check);
    }
  };
  requestAnimationFrame(check);
})();""" % RENDERED

SECTION = "site"
BUILDS = 5
LOADS_PER_PAGE = 3
BUILD_TARGET_S = 3.0
COLD_BUILD_TARGET_S = 10.0
LOAD_TARGET_MS = 400
RENDERED_TARGET_MS = 1500
RENDER_TIMEOUT_MS = 30_000
PAGE_TARGET_BYTES = 1_000_000  # every page, figures included (diagrams and equations arrive drawn)


def rows() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-site-") as scratch:
        builds = [run_strict_build(Path(scratch) / f"site-{i}") for i in range(BUILDS)]
        failed = [build for build in builds if not build.ok]
        if failed:
            raise SystemExit(f"bench site: the strict build failed:\n{failed[0].log[-3000:]}")
        build_s = statistics.median(build.seconds for build in builds)
        # The same build with an empty build cache: every diagram, equation and notebook made again.
        empty_cache = {"SITE_BUILD_CACHE": str(Path(scratch) / "empty-build-cache")}
        cold = run_strict_build(Path(scratch) / "site-cold", extra_env=empty_cache)
        result = [
            Row(SECTION, f"strict build, drawings cached (median of {BUILDS})", f"{build_s:.2f} s", f"<= {BUILD_TARGET_S:.0f} s",
                build_s <= BUILD_TARGET_S),
            Row(SECTION, "strict build, nothing cached (all drawn)", f"{cold.seconds:.2f} s", f"<= {COLD_BUILD_TARGET_S:.0f} s",
                cold.ok and cold.seconds <= COLD_BUILD_TARGET_S),
        ]
        missing = chromium_missing()
        if missing:
            return result + [Row(SECTION, "page loads in Chromium", f"not measured: {missing}")]
        return result + page_rows(builds[-1].site)


def page_rows(site: Path) -> list[Row]:
    from playwright.sync_api import sync_playwright

    result = []
    with SiteServer(site) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for page in built_pages(site):
            loads = [measure(browser, server, page) for _ in range(LOADS_PER_PAGE)]
            load_ms = statistics.median(m["load_ms"] for m in loads)
            rendered_ms = statistics.median(m["rendered_ms"] for m in loads)
            sent = statistics.median(m["bytes"] for m in loads)
            name = page_id(page)
            what = f"{loads[0]['diagrams']} diagrams, {loads[0]['equations']} equations"
            result += [
                Row(SECTION, f"{name}: load event", f"{load_ms:.0f} ms", f"<= {LOAD_TARGET_MS} ms", load_ms <= LOAD_TARGET_MS),
                Row(SECTION, f"{name}: fully rendered ({what})",
                    f"{rendered_ms:.0f} ms" if math.isfinite(rendered_ms) else f"not in {RENDER_TIMEOUT_MS // 1000} s",
                    f"<= {RENDERED_TARGET_MS} ms", rendered_ms <= RENDERED_TARGET_MS),
                Row(SECTION, f"{name}: all drawn at the load event", "yes" if all(m["drawn_at_load"] for m in loads) else "no",
                    "yes", all(m["drawn_at_load"] for m in loads)),
                Row(SECTION, f"{name}: bytes transferred", f"{sent / 1e6:.2f} MB",
                    f"<= {PAGE_TARGET_BYTES / 1e6:.0f} MB", sent <= PAGE_TARGET_BYTES),
            ]
        browser.close()
    return result


def measure(browser, server, page: str) -> dict:
    """One cold load of one page: times from the start of navigation, and bytes sent."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(OPEN_SHADOW_ROOTS)
    context.add_init_script(RECORD_RENDERED)
    tab = context.new_page()
    server.reset_bytes()
    tab.goto(server.url + page, wait_until="load")
    try:
        rendered_ms = tab.wait_for_function("() => window.renderedAt", timeout=RENDER_TIMEOUT_MS).json_value()
    except PlaywrightTimeout:
        rendered_ms = math.inf  # a diagram or an equation never rendered
    load_ms = tab.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventStart")
    drawn_at_load = tab.evaluate("() => window.renderedAtLoad")
    counts = tab.evaluate("() => [document.querySelectorAll('.diagram, .mermaid').length, document.querySelectorAll('.arithmatex').length]")
    tab.wait_for_load_state("networkidle")  # the search index, fetched by a worker, counts too
    sent = server.bytes_sent
    context.close()
    return {"load_ms": load_ms, "rendered_ms": rendered_ms, "drawn_at_load": drawn_at_load, "bytes": sent,
            "diagrams": counts[0], "equations": counts[1]}
