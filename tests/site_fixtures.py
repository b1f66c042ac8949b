"""Fixtures for the site's tests (the pieces themselves are in tools/site.py):

- `built_site`: the site built once per test session with `mkdocs build --strict` into a
  temporary folder, shared by every test and every worker that needs it (a build with any
  warning stops them, with the log); `build_site()` is the same build, outside a fixture.
- `site_server`: that folder served over HTTP on 127.0.0.1.
- `browser`: one headless Chromium for the session.
- `site_page`: a test that asks for it runs once per page of the site, found from the Markdown
  in docs/, not from a hand-made list (tests/test_site_build.py checks that the build makes
  exactly those pages). So the collection needs no build: the build waits until a test needs
  it, while the other worker and the Slurm jobs go on (a fresh clone's first build draws every
  diagram and equation, about 15 s here).
"""

import fcntl
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import skip_or_fail
from tools.site import Build, SiteServer, chromium_missing, launch_chromium, page_id, run_strict_build, source_pages


SHARED_BUILD = "SITE_TEST_BUILD"  # the folder of the session's build, the same for every worker


def pytest_configure(config):
    # Made before pytest-xdist starts its workers, which inherit the environment: the workers
    # share one build, and so collect the same pages.
    if not hasattr(config, "workerinput"):
        os.environ[SHARED_BUILD] = tempfile.mkdtemp(prefix="site-build-")


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ.pop(SHARED_BUILD), ignore_errors=True)


@functools.cache
def build_site() -> Build:
    """The session's one build: the first worker to get here builds, the other waits and reads
    how it went."""
    folder = Path(os.environ[SHARED_BUILD])
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        outcome = folder / "build.json"
        if not outcome.exists():
            build = run_strict_build(folder / "site")
            outcome.write_text(json.dumps({"ok": build.ok, "log": build.log, "seconds": build.seconds}))
        return Build(site=folder / "site", **json.loads(outcome.read_text()))


def pytest_generate_tests(metafunc):
    """One test per page of the site for every test that asks for `site_page`."""
    if "site_page" not in metafunc.fixturenames:
        return
    pages = source_pages()
    if not pages:
        # Parametrized with nothing, pytest would skip quietly; a site without pages is a failure.
        metafunc.parametrize("site_page", [None], ids=["no-pages"], scope="module")
        return
    metafunc.parametrize("site_page", pages, ids=[page_id(p) for p in pages], scope="module")


@pytest.fixture(scope="session")
def built_site() -> Path:
    build = build_site()
    if not build.ok:
        pytest.fail(f"`mkdocs build --strict` failed or warned:\n{build.log[-4000:]}")
    return build.site


@pytest.fixture(scope="session")
def site_server(built_site):
    with SiteServer(built_site) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    missing = chromium_missing()
    if missing:
        skip_or_fail(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()
