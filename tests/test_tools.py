"""The maintainers' tools: `make results` knows every example and refuses to measure on a busy machine."""

import pytest

from conftest import REPO, example_names
from tools import results
from tools.full_runs import RECIPES, WITHOUT_FULL_RUN

def test_every_example_has_a_full_run_for_make_results_or_says_why_not():
    examples = example_names()
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


def test_timings_whose_repeats_disagree_are_refused(tmp_path):
    steady = results.Run(tmp_path, {"largest_spread": results.MAX_SPREAD - 0.01}, 1.0)
    results.check_repeats({"thread_scaling": steady, "digits_cnn": results.Run(tmp_path, {}, 1.0)})
    moved = results.Run(tmp_path, {"largest_spread": results.MAX_SPREAD + 0.1}, 1.0)
    with pytest.raises(results.Refused, match="the repeats of thread_scaling disagree"):
        results.check_repeats({"thread_scaling": moved})


def test_a_probe_that_shared_its_cores_is_refused():
    results.check_probes([0.99, 0.97, results.MIN_CPU_SHARE + 0.01])
    with pytest.raises(results.Refused, match="another program took the cores"):
        results.check_probes([0.99, 0.97, 0.6])


WHAT_A_SCRIPT_SEES = """
import json, os, sys
print(json.dumps({"name": __name__, "file": __file__, "argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0],
                  "variable": os.environ.get("WARM_TEST"), "stdin": sys.stdin.read()}))
print("to stderr", file=sys.stderr)
if sys.argv[1] == "exit":
    sys.exit(int(sys.argv[2]))
if sys.argv[1] == "raise":
    raise ValueError("a bug")
"""


@pytest.mark.parametrize("how", [("exit", "0"), ("exit", "2"), ("raise", "-")], ids=["exit 0", "exit 2", "uncaught exception"])
def test_the_warm_python_runs_a_script_as_a_fresh_python_does(how, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import warm_python

    script = tmp_path / "folder" / "script.py"
    script.parent.mkdir()
    script.write_text(WHAT_A_SCRIPT_SEES)
    environment = {"PATH": os.environ["PATH"], "WARM_TEST": "yes"}
    fresh = subprocess.run([sys.executable, str(script), *how], cwd=tmp_path, env=environment, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    warm = warm_python().run([str(script), *how], cwd=tmp_path, env=environment, timeout=60)
    assert (warm.returncode, warm.stdout) == (fresh.returncode, fresh.stdout)
    assert warm.stderr.splitlines()[0] == fresh.stderr.splitlines()[0] == "to stderr"
    assert warm.stderr.splitlines()[-1] == fresh.stderr.splitlines()[-1]  # the exception's last line, if any
