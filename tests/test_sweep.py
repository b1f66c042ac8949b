"""A hyperparameter sweep as a job array, and the job that gathers it.

1. The array has one task per row of the parameter file, and each task trains its own row.
2. The gathering script picks the best setting by validation accuracy (never by test accuracy),
   and refuses to gather a sweep with a missing task, naming it.
3. On the local Slurm, slurm/submit_sweep.sh submits the array and the gathering job chained with
   --dependency=afterok; the gathering job runs after every task and collects all of them.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from job_rules import JobFile

TRAIN = REPO / "examples" / "sweep_train.py"
GATHER = REPO / "examples" / "sweep_gather.py"
PARAMS = REPO / "examples" / "sweep_params.csv"
ARRAY_JOB = REPO / "slurm" / "sweep_array.sbatch"
SUBMIT = REPO / "slurm" / "submit_sweep.sh"
SWEEP_TIMEOUT_S = 300


def rows(path: Path = PARAMS) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def run(script: Path, *args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run an example in quick mode on one thread, as if outside any Slurm job but for `env`."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    environment.update({"WORKSHOP_QUICK": "1", "SLURM_CPUS_PER_TASK": "1", "MPLBACKEND": "Agg", **(env or {})})
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------------------------------------
# 1. One task per row
# ------------------------------------------------------------------------------------------------
def test_the_array_has_exactly_one_task_per_row_of_the_parameter_file():
    settings = rows()
    assert len(settings) >= 2, f"{PARAMS.name} holds {len(settings)} settings: a sweep needs several"
    array = JobFile.read(ARRAY_JOB).value("--array")
    assert array == f"1-{len(settings)}", (
        f"slurm/sweep_array.sbatch has --array={array} but {PARAMS.name} has {len(settings)} rows: "
        f"make it --array=1-{len(settings)}"
    )
    assert f"--params {PARAMS.relative_to(REPO)}" in ARRAY_JOB.read_text()


def test_an_array_task_trains_the_row_named_by_slurm_array_task_id(tmp_path):
    task = 3
    result = run(TRAIN, "--out", str(tmp_path), env={"SLURM_ARRAY_TASK_ID": str(task)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith(f"result: task={task} "), result.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    row = rows()[task - 1]
    assert (metrics["task"], metrics["learning_rate"], metrics["hidden"]) == (task, float(row["learning_rate"]), int(row["hidden"]))
    # the model is chosen on validation data; the test part is kept apart and only reported
    assert metrics["sizes"]["validation"] > 0 and metrics["sizes"]["test"] > 0
    assert 0.1 < metrics["validation_accuracy"] <= 1 and 0 <= metrics["test_accuracy"] <= 1


def test_a_task_past_the_end_of_the_parameter_file_stops_with_one_line_saying_how_to_fix_the_array(tmp_path):
    result = run(TRAIN, "--out", str(tmp_path), env={"SLURM_ARRAY_TASK_ID": "99"})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"--array=1-{len(rows())}" in result.stderr
    assert not (tmp_path / "metrics.json").exists()


# ------------------------------------------------------------------------------------------------
# 2. Gathering: best by validation accuracy, and no gathering of a partial sweep
# ------------------------------------------------------------------------------------------------
def fake_sweep(folder: Path, results: list[tuple[float, int, float, float]]) -> tuple[Path, Path]:
    """A parameter file and one metrics.json per task, as the array tasks write them.

    Each result is (learning_rate, hidden, validation_accuracy, test_accuracy)."""
    params = folder / "params.csv"
    params.write_text("learning_rate,hidden\n" + "".join(f"{lr},{hidden}\n" for lr, hidden, _, _ in results))
    for task, (lr, hidden, validation, test) in enumerate(results, start=1):
        task_folder = folder / f"sweep_array_7_{task}"
        task_folder.mkdir()
        metrics = {"task": task, "learning_rate": lr, "hidden": hidden, "validation_loss": 1 - validation,
                   "validation_accuracy": validation, "test_accuracy": test}  # fmt: skip
        (task_folder / "metrics.json").write_text(json.dumps(metrics))
    return params, folder / "sweep_array_7"


def test_gathering_marks_the_best_setting_by_validation_accuracy_not_test_accuracy(tmp_path):
    # Task 2 is best on validation data; task 3 would look best if one peeked at the test part.
    params, prefix = fake_sweep(tmp_path, [(0.001, 16, 0.90, 0.90), (0.01, 16, 0.97, 0.93), (0.1, 16, 0.95, 0.99)])
    out = tmp_path / "gathered"
    result = run(GATHER, "--tasks", str(prefix), "--params", str(params), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("result: points=3 best_task=2 "), result.stdout

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best"]["task"] == 2 and metrics["points"] == 3
    table = list(csv.DictReader((out / "sweep_table.csv").open()))
    assert [row["best"] for row in table] == ["", "yes", ""]
    markdown = (out / "sweep_table.md").read_text().splitlines()
    assert [line for line in markdown if "**best**" in line] == [markdown[3]], markdown  # header, rule, task 1, task 2
    assert (out / "sweep.png").stat().st_size > 10_000


def test_gathering_a_sweep_with_a_missing_task_names_it_and_writes_nothing(tmp_path):
    params, prefix = fake_sweep(tmp_path, [(0.001, 16, 0.90, 0.90), (0.01, 16, 0.97, 0.93), (0.1, 16, 0.95, 0.99)])
    (prefix.parent / f"{prefix.name}_2" / "metrics.json").unlink()
    out = tmp_path / "gathered"
    result = run(GATHER, "--tasks", str(prefix), "--params", str(params), "--out", str(out))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "task(s) 2 of 3" in result.stderr
    assert not (out / "metrics.json").exists()


# ------------------------------------------------------------------------------------------------
# 3. The whole chain on the local Slurm
# ------------------------------------------------------------------------------------------------
def wait_until_gone(slurm_cluster, job_ids: list[str], timeout: float) -> None:
    """Wait until Slurm no longer lists the jobs; fail at once if one can never start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = slurm_cluster.run("squeue", "--noheader", f"--jobs={','.join(job_ids)}", "--format=%i %T %r").stdout
        if "DependencyNeverSatisfied" in listed:
            slurm_cluster.run("scancel", *job_ids)
            pytest.fail(f"the gathering job can never start: a task of the array failed\n{listed}")
        if not listed.strip():
            return
        time.sleep(1)
    slurm_cluster.run("scancel", *job_ids)
    pytest.fail(f"the sweep did not finish within {timeout} s")


@pytest.mark.slurm
def test_submit_sweep_chains_the_array_and_the_gathering_job_which_collects_every_task(slurm_cluster):
    from slurm_fixtures import scratch_copy

    scratch = scratch_copy(slurm_cluster.scratch_root / "submit_sweep")
    submitted = slurm_cluster.run(
        "slurm/submit_sweep.sh", *slurm_cluster.submit_args(ARRAY_JOB), cwd=scratch, timeout=60
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    array_id = re.search(r"array job: (\d+)", submitted.stdout).group(1)
    gather_id = re.search(r"gathering job: (\d+)", submitted.stdout).group(1)
    wait_until_gone(slurm_cluster, [array_id, gather_id], SWEEP_TIMEOUT_S)

    settings = rows()
    task_logs = sorted(scratch.glob(f"sweep_array_{array_id}_*.out"))
    assert len(task_logs) == len(settings), [log.name for log in task_logs]
    for log in task_logs:
        assert log.read_text().strip().splitlines()[-1].startswith("result: task="), log.read_text()[-2000:]

    # The gathering job ran (so, with afterok, every task ended with exit code 0), after them all.
    gather_log = (scratch / f"sweep_gather_{gather_id}.out").read_text()
    last = gather_log.strip().splitlines()[-1]
    assert last.startswith(f"result: points={len(settings)} "), gather_log[-3000:]
    gathered = scratch / "results" / f"sweep_gather_{gather_id}"
    metrics = json.loads((gathered / "metrics.json").read_text())

    # Recompute the choice from the tasks' own results: the best validation accuracy wins.
    tasks = [json.loads((scratch / "results" / f"sweep_array_{array_id}_{n}" / "metrics.json").read_text()) for n in range(1, len(settings) + 1)]
    best_validation = max(task["validation_accuracy"] for task in tasks)
    assert [row["task"] for row in metrics["table"].values()] == list(range(1, len(settings) + 1))
    assert [task for task, row in metrics["table"].items() if row["chosen"]] == [str(metrics["best"]["task"])]
    assert metrics["best"]["validation_accuracy"] == best_validation
    assert tasks[metrics["best"]["task"] - 1]["validation_accuracy"] == best_validation
    assert f"best_task={metrics['best']['task']} " in last
    assert sum("**best**" in line for line in (gathered / "sweep_table.md").read_text().splitlines()) == 1
    assert (gathered / "sweep.png").stat().st_size > 10_000
