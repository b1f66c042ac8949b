"""Benchmark: Lighthouse on every page of the built site, against the targets of the site's
"pages that arrive drawn" work.

Lighthouse 12.2.3 from npm (13 needs Node 22; this machine has Node 20), desktop preset, driving
the same headless Chromium as the tests, on the strict build served from 127.0.0.1 by the tests'
server (no compression, caching forbidden). Per page: the four category scores, total blocking
time, largest contentful paint and the bytes transferred, figures included; and the audits that
failed, by name. The first run installs Lighthouse into .cache/ with npm (about 30 s; nothing is
fetched after that). A long page takes up to a minute, so `LIGHTHOUSE_PAGES=overview,what-ml-can-do`
measures only the pages named.
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

from bench.table import Row
from hooks.drawing import CHROMIUM, CHROMIUM_ARGS
from tools.site import REPO, SiteServer, built_pages, chromium_missing, page_id, run_strict_build

SECTION = "lighthouse"
VERSION = "12.2.3"
PREFIX = REPO / ".cache" / f"lighthouse-{VERSION}"
CATEGORIES = {"performance": 98, "accessibility": 100, "best-practices": 100, "seo": 100}
TBT_TARGET_MS = 100
LCP_TARGET_MS = 1000
WEIGHT_TARGET_BYTES = 1_000_000


def lighthouse() -> Path:
    """The pinned Lighthouse, installed into .cache/ on first use."""
    program = PREFIX / "node_modules" / ".bin" / "lighthouse"
    if not program.is_file():
        print(f"bench lighthouse: installing lighthouse@{VERSION} into {PREFIX.relative_to(REPO)} (npm)", flush=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(PREFIX), "--save-exact", "--no-audit", "--no-fund", f"lighthouse@{VERSION}"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return program


def audit(program: Path, url: str) -> dict:
    """Lighthouse's report of one page, as its JSON."""
    flags = " ".join(["--headless=new", *(a for a in CHROMIUM_ARGS if a != "--headless")])
    done = subprocess.run(
        [str(program), url, "--preset=desktop", "--output=json", "--output-path=stdout", "--quiet",
         f"--chrome-flags={flags}", f"--only-categories={','.join(CATEGORIES)}"],
        env=dict(os.environ, CHROME_PATH=str(CHROMIUM)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"lighthouse failed on {url}: {done.stderr[-1000:]}")
    return json.loads(done.stdout)


def page_rows(name: str, report: dict) -> list[Row]:
    scores = {key: round(100 * (report["categories"][key]["score"] or 0)) for key in CATEGORIES}
    audits = report["audits"]
    tbt = audits["total-blocking-time"]["numericValue"]
    lcp = audits["largest-contentful-paint"]["numericValue"]
    weight = audits["total-byte-weight"]["numericValue"]
    # The pass-or-fail audits of accessibility, best practices and SEO, those that do not count
    # towards the score (valid-source-maps) included; performance's are the measurements above.
    failed = sorted(
        ref["id"]
        for key in CATEGORIES
        if key != "performance"
        for ref in report["categories"][key]["auditRefs"]
        if audits[ref["id"]]["scoreDisplayMode"] == "binary" and audits[ref["id"]]["score"] < 1
    )
    return [
        *(Row(SECTION, f"{name}: {key}", str(score), f">= {CATEGORIES[key]}", score >= CATEGORIES[key]) for key, score in scores.items()),
        Row(SECTION, f"{name}: total blocking time", f"{tbt:.0f} ms", f"<= {TBT_TARGET_MS} ms", tbt <= TBT_TARGET_MS),
        Row(SECTION, f"{name}: largest contentful paint", f"{lcp:.0f} ms", f"<= {LCP_TARGET_MS} ms", lcp <= LCP_TARGET_MS),
        Row(SECTION, f"{name}: transferred", f"{weight / 1e6:.2f} MB", f"<= {WEIGHT_TARGET_BYTES / 1e6:.0f} MB", weight <= WEIGHT_TARGET_BYTES),
        Row(SECTION, f"{name}: failed audits", ", ".join(failed) or "none", "none", not failed),
    ]


def rows() -> list[Row]:
    missing = chromium_missing()
    if missing:
        return [Row(SECTION, "Lighthouse", f"not measured: {missing}")]
    program = lighthouse()
    wanted = {name for name in os.environ.get("LIGHTHOUSE_PAGES", "").split(",") if name}
    with tempfile.TemporaryDirectory(prefix="bench-lighthouse-") as scratch:
        build = run_strict_build(Path(scratch) / "site")
        if not build.ok:
            raise SystemExit(f"bench lighthouse: the strict build failed:\n{build.log[-3000:]}")
        result = []
        with SiteServer(build.site) as server:
            for page in built_pages(build.site):
                if wanted and page_id(page) not in wanted:
                    continue
                print(f"bench lighthouse: {page_id(page)}", flush=True)
                result += page_rows(page_id(page), audit(program, server.url + page))
        return result
