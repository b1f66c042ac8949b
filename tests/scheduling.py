"""The order of the tests, and which run together when `make test` runs them in parallel.

`make test` runs the tests in one process per core (pytest-xdist: `-n auto --dist loadgroup`;
two on CI). Tests that share something expensive go to the same process, as one group:
- a test marked `@pytest.mark.xdist_group(name)` goes to that group;
- every test that uses the local Slurm ("slurm"): one cluster, whose jobs run in the background
  (tests/slurm_fixtures.py) while those tests wait and the other process runs the rest;
- the tests of one page of the site in Chromium (`site_page`): the page loaded once;
- an example's contract tests (tests/test_example_contract.py) with the tests of its own file
  (tests/test_<example>.py, or a test or file that asks `quick_run("<example>")`) and its
  notebook's (tests/test_notebooks.py marks them): its quick run and its notebook run once each;
- otherwise the tests of one file: its module-scoped fixtures once.
The groups in FIRST start first, as they take longest: the Slurm tests (so the jobs run beside
everything else; also without pytest-xdist, where this is the order) and the setup page's blocks.

pytest-xdist's own `--dist loadgroup` reads the groups from the test ids, which it suffixes with
`@group`; since pytest 9 an item's id cannot be changed that way, so the groups are passed to
the scheduler in a file instead (the same scheduling otherwise: one group, one process).

Loaded from pytest.ini (`-p scheduling`).
"""

import inspect
import json
import os
import re
import tempfile
import functools
from functools import cache
from pathlib import Path

import pytest

from conftest import example_names

FIRST = ("slurm", "code blocks of setup.md")  # the groups that start first, in this order


def example_asked_for(source: str) -> str | None:
    """The one example that `source` asks `quick_run` for, if it asks for exactly one."""
    asked = set(re.findall(r'quick_run\(\s*"(\w+)"', source))
    return asked.pop() if len(asked) == 1 else None


@cache
def example_of_file(path: Path) -> str | None:
    """The example a test file is about: tests/test_<example>.py, or the one it asks `quick_run` for."""
    stem = path.stem.removeprefix("test_")
    return stem if stem in example_names() else example_asked_for(path.read_text())


@cache
def example_of_function(function) -> str | None:
    """The example one test function asks `quick_run` for (tests/test_sweep.py asks for two, one
    per test); read once per function, not once per parameter."""
    return example_asked_for(inspect.getsource(function))


def group_of(item: pytest.Item) -> str:
    marked = item.get_closest_marker("xdist_group")
    if marked:
        return marked.args[0]
    fixtures = getattr(item, "fixturenames", ())
    if "slurm_cluster" in fixtures:
        return "slurm"
    params = getattr(item, "callspec", None) and item.callspec.params
    if params and params.get("site_page") is not None:
        return f"page {params['site_page']}"
    example = params and params.get("example")
    if getattr(example, "name", None):
        return example.name
    function = getattr(item, "function", None)
    return (function and example_of_function(function)) or example_of_file(item.path) or item.path.name


def pytest_configure(config):
    config.addinivalue_line("markers", "xdist_group(name): tests that pytest-xdist runs in the same process")


def pytest_itemcollected(item):
    # as each test is collected, so before any hook reorders or groups them
    if not item.get_closest_marker("xdist_group"):
        item.add_marker(pytest.mark.xdist_group(group_of(item)))


def pytest_collection_modifyitems(config, items):
    rank = {group: number for number, group in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.get_closest_marker("xdist_group").args[0], len(FIRST)))  # stable
    groups_file = getattr(config, "workerinput", {}).get(GROUPS_FILE)
    if groups_file:  # a pytest-xdist worker: tell the scheduler (all workers collect the same)
        written = Path(f"{groups_file}.{config.workerinput['workerid']}")
        written.write_text(json.dumps({item.nodeid: item.get_closest_marker("xdist_group").args[0] for item in items}))
        written.rename(groups_file)


# ------------------------------------------------------------------------------------------------
# pytest-xdist's side (in the process that hands out the tests)
# ------------------------------------------------------------------------------------------------
GROUPS_FILE = "scheduling_groups_file"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    config = node.config
    if not hasattr(config, "_scheduling_groups_file"):
        handle, config._scheduling_groups_file = tempfile.mkstemp(prefix="pytest-groups-", suffix=".json")
        os.close(handle)
    node.workerinput[GROUPS_FILE] = config._scheduling_groups_file


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        """pytest-xdist's loadgroup, with the groups read from the workers' file."""

        @functools.cached_property
        def groups(self) -> dict[str, str]:
            return json.loads(Path(config._scheduling_groups_file).read_text())

        def _split_scope(self, nodeid: str) -> str:
            return self.groups.get(nodeid, nodeid)

    return ByGroup(config, log)


def pytest_unconfigure(config):
    if hasattr(config, "_scheduling_groups_file"):
        Path(config._scheduling_groups_file).unlink(missing_ok=True)
