"""Every example keeps the same promises to the person who runs it (the table is in
example_contracts.py): a quick run that writes complete results, the same numbers for the same
seed, options that mean what they say, and bad input refused in one line without losing
earlier results."""

import json
import math
import subprocess

import pytest

from conftest import example_names, run_example, unwritable_folder
from example_contracts import EXAMPLES, Example
from notebook_fixtures import NOTEBOOK_EXAMPLES

EARLIER_RESULTS = '{"accuracy": 0.99, "from": "an earlier run"}\n'


def test_the_contract_covers_every_example_script():
    scripts = example_names()
    assert scripts, "no example script found in examples/"
    missing = scripts - {example.name for example in EXAMPLES}
    assert not missing, f"these examples have no row in tests/example_contracts.py: {sorted(missing)}"


def contract_cases():
    return [pytest.param(example, id=example.name) for example in EXAMPLES]


def bad_input_cases():
    return [
        pytest.param(example, args, named, id=f"{example.name}-{case}")
        for example in EXAMPLES
        for case, (args, named) in example.bad_inputs.items()
    ]


def explain(process: subprocess.CompletedProcess) -> str:
    return f"exit status {process.returncode}\nstdout:\n{process.stdout[-3000:]}\nstderr:\n{process.stderr[-3000:]}"


def without_varying(metrics: dict, example: Example) -> dict:
    return {key: value for key, value in metrics.items() if key != "run" and key not in example.varying}


@pytest.mark.parametrize("example", contract_cases())
def test_quick_run_ends_with_a_result_line_and_writes_complete_results(example, quick_run):
    run = quick_run(example.name)
    assert run.process.returncode == 0, explain(run.process)
    assert run.process.stdout.strip().splitlines()[-1].startswith("result: "), "the last line of the log is not the result"
    missing = [name for name in example.writes if not (run.out / name).is_file()]
    assert not missing, f"the quick run did not write {missing} into --out"
    assert {"command", "host", "cpu", "threads", "device", "wall_time_s"} <= run.metrics["run"].keys()
    assert run.metrics["run"]["command"].startswith(f"python3 examples/{example.name}.py")


@pytest.mark.parametrize("example", contract_cases())
def test_the_same_seed_gives_the_same_metrics(example, quick_run, notebook_run, tmp_path):
    first = quick_run(example.name)
    # Another interpreter, with another hash seed: a result that hangs on set or dict order shows.
    # Where the example has a notebook form that runs just as the quick run does, that is the
    # second run (a Jupyter kernel), so the notebook must also reach the script's numbers.
    if example.name in NOTEBOOK_EXAMPLES and example.quick_args == ("--quick",) and not example.environment:
        second, how = notebook_run(example.name).metrics, "its notebook form"
    else:
        process = run_example(example, tmp_path, hash_seed=2)
        assert process.returncode == 0, explain(process)
        second, how = json.loads((tmp_path / "out" / "metrics.json").read_text()), "a second quick run"
    expected, got = without_varying(first.metrics, example), without_varying(second, example)
    assert got.keys() == expected.keys(), f"{how} wrote other metrics: {sorted(got.keys() ^ expected.keys())}"
    differ = sorted(key for key in expected if not same_numbers(expected[key], got[key]))
    assert not differ, f"with the same seed, {how} gave other values: " + "; ".join(
        f"{key}: {expected[key]!r} then {got[key]!r}" for key in differ
    )[:2000]


def same_numbers(expected, got) -> bool:
    """Equal, floats to 12 significant digits: the last bits of a float64 sum may differ between
    two interpreters (NumPy's vectorised sums depend on how the array is aligned in memory)."""
    if isinstance(expected, float) and isinstance(got, float):
        return math.isclose(expected, got, rel_tol=1e-12)
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(same_numbers(expected[key], got[key]) for key in expected)
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(map(same_numbers, expected, got))
    return expected == got


@pytest.mark.parametrize("example", contract_cases())
def test_an_explicit_option_beats_quick(example, tmp_path):
    args, key, expected = example.explicit
    process = run_example(example, tmp_path, *args)
    assert process.returncode == 0, explain(process)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics[key] == expected, f"{' '.join(args)} with --quick gave {key}={metrics[key]!r}, not {expected!r}"


@pytest.mark.parametrize("example, args, named", bad_input_cases())
def test_bad_input_gets_one_line_exit_2_and_keeps_earlier_results(example, args, named, tmp_path):
    out = tmp_path / "earlier_results"
    out.mkdir()
    (out / "metrics.json").write_text(EARLIER_RESULTS)
    process = run_example(example, tmp_path, *args, out=out)
    assert process.returncode == 2, explain(process)
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in process.stderr, f"expected one line on stderr:\n{process.stderr}"
    assert named in lines[0], f"the error does not name {named!r}: {lines[0]}"
    assert "result:" not in process.stdout
    assert (out / "metrics.json").read_text() == EARLIER_RESULTS, "the failed run changed the earlier metrics.json"
    assert [path.name for path in out.iterdir()] == ["metrics.json"], "the failed run left files behind"


@pytest.mark.parametrize("example", contract_cases())
def test_an_out_folder_that_cannot_be_made_is_refused_in_one_line(example, tmp_path):
    process = run_example(example, tmp_path, out=unwritable_folder(tmp_path))
    assert process.returncode == 2, explain(process)
    assert len(process.stderr.strip().splitlines()) == 1 and "cannot write to --out" in process.stderr, process.stderr
