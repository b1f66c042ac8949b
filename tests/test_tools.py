"""The maintainers' tools: `make results` knows every example and refuses to measure on a busy machine."""

import pytest

from conftest import REPO
from tools import results
from tools.full_runs import RECIPES, WITHOUT_FULL_RUN

SHARED_MODULES = {"workshop", "digits"}


def test_every_example_has_a_full_run_for_make_results_or_says_why_not():
    examples = {path.stem for path in (REPO / "examples").glob("*.py")} - SHARED_MODULES
    missing = examples - set(RECIPES) - set(WITHOUT_FULL_RUN)
    assert not missing, f"add these to RECIPES in tools/full_runs.py (or to WITHOUT_FULL_RUN, with the reason): {sorted(missing)}"
    gone = (set(RECIPES) | set(WITHOUT_FULL_RUN)) - examples
    assert not gone, f"tools/full_runs.py names examples that do not exist: {sorted(gone)}"


def test_results_are_named_by_example_or_by_their_folder_and_anything_else_is_refused():
    assert results.chosen(["ddp_srun", "digits_cnn", "ddp_train"]) == ["ddp_train", "digits_cnn"]
    with pytest.raises(results.Refused, match="no full run is known for chess"):
        results.chosen(["chess"])


def test_a_busy_machine_is_refused_in_one_line_before_anything_runs(monkeypatch, capsys):
    monkeypatch.setattr(results, "load_average", lambda: 3.5)
    monkeypatch.setattr(results, "FullRuns", None)  # would fail if a run were started
    before = {path: path.stat().st_mtime_ns for path in (REPO / "docs" / "results").rglob("*")}
    assert results.main(["digits_cnn"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "busy" in lines[0] and "load 3.50" in lines[0], lines
    assert {path: path.stat().st_mtime_ns for path in (REPO / "docs" / "results").rglob("*")} == before


def test_timings_that_disagree_beyond_the_tolerance_are_refused():
    results.check_probes([1.0, 1.05, 1.0 + results.TOLERANCE * 0.9])
    with pytest.raises(results.Refused, match="repeated timings disagree"):
        results.check_probes([1.0, 1.05, 1.0 + results.TOLERANCE * 1.5])
