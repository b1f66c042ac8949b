"""The sweep: a job array whose task number picks a row of the settings file, and a gathering
job that chooses the best setting by validation accuracy and reports its test accuracy.

The quick runs come from tests/example_contracts.py: sweep_train as array task 3, sweep_gather
over a made-up sweep in which choosing by test accuracy, or taking the first of two equal
validation accuracies, would pick another task. On the local Slurm, slurm/submit_sweep.sh chains
the real array and the gathering job.
"""

from __future__ import annotations

import csv
import json

import pytest
from example_contracts import FAKE_SWEEP
from tools.job_rules import JobFile

from conftest import REPO

PARAMS = REPO / "examples" / "sweep_params.csv"
ARRAY_JOB = REPO / "slurm" / "sweep_array.sbatch"
SUBMIT = REPO / "slurm" / "submit_sweep.sh"
CHANCE = 0.1  # ten digits


def rows() -> list[dict]:
    with open(PARAMS, newline="") as file:
        return list(csv.DictReader(file))


def test_the_array_has_one_task_per_row_of_the_settings_file():
    array = JobFile.read(ARRAY_JOB).value("--array")
    assert array == f"1-{len(rows())}", (
        f"slurm/sweep_array.sbatch has --array={array} but {PARAMS.name} has {len(rows())} rows: make it --array=1-{len(rows())}"
    )


def test_an_array_task_trains_the_row_its_task_id_names_and_beats_chance(quick_run):
    run = quick_run("sweep_train")  # SLURM_ARRAY_TASK_ID=3
    row = rows()[2]
    assert run.metrics["task"] == 3 and run.metrics["learning_rate"] == float(row["learning_rate"]), (
        f"array task 3 should train row 3 ({row}), but trained task {run.metrics['task']} with {run.metrics['learning_rate']}"
    )
    assert run.metrics["test_accuracy"] > 2 * CHANCE, f"test accuracy {run.metrics['test_accuracy']:.2%} is near chance"


def test_the_gathering_picks_the_best_validation_accuracy_and_reports_its_test_accuracy(quick_run):
    run = quick_run("sweep_gather")
    tasks = [json.loads(path.read_text()) for path in sorted(run.out.parent.glob(f"{FAKE_SWEEP}_*/metrics.json"))]
    best = max(tasks, key=lambda task: (task["validation_accuracy"], -task["validation_loss"]))
    by_test = max(tasks, key=lambda task: task["test_accuracy"])
    assert best is not by_test, "the made-up sweep must have its best test accuracy in another task than its best validation"
    chosen = run.metrics["best"]
    assert chosen["task"] == best["task"], (
        f"the gathering chose task {chosen['task']}; task {best['task']} has the best validation accuracy "
        f"(task {by_test['task']} has the best test accuracy, which must play no part in the choice)"
    )
    assert chosen["test_accuracy"] == best["test_accuracy"], "the reported test accuracy is not the chosen task's"
    with open(run.out / "sweep_table.csv", newline="") as file:
        marked = [row["task"] for row in csv.DictReader(file) if row["best"]]
    assert marked == [str(best["task"])], f"the table marks tasks {marked} as best, not task {best['task']} alone"


@pytest.mark.slurm
def test_submit_sweep_runs_every_task_then_the_gathering_job_which_chooses_by_validation(slurm_cluster):
    # the same run as tests/test_job_files.py's (once per session): the array, then the gathering job
    submitted, runs = slurm_cluster.submit_script(SUBMIT)
    assert submitted.returncode == 0 and len(runs) == 2, submitted.stdout + submitted.stderr
    array, gather = runs  # by job id: the array was submitted first
    assert array.exit_code == 0, array.explain()
    assert gather.exit_code == 0, f"the gathering job did not run, or failed\n{gather.explain()}"

    tasks = [json.loads((folder / "metrics.json").read_text()) for folder in array.results_dirs()]
    assert [task["task"] for task in tasks] == list(range(1, len(rows()) + 1)), f"tasks found: {array.array_tasks()}"
    metrics = json.loads((gather.results_dir / "metrics.json").read_text())
    best = max(tasks, key=lambda task: (task["validation_accuracy"], -task["validation_loss"]))
    assert metrics["points"] == len(tasks) and metrics["best"]["task"] == best["task"], (
        f"the gathering job chose task {metrics['best']['task']} of {metrics['points']}; "
        f"task {best['task']} has the best validation accuracy of the {len(tasks)}"
    )
    assert gather.log.strip().splitlines()[-1].startswith(f"result: points={len(tasks)} best_task={best['task']} "), gather.explain()
