"""Benchmark: the hyperparameter sweep as a job array plus a gathering job (slurm/submit_sweep.sh).

slurm/submit_sweep.sh submits the array (one task per row of examples/sweep_params.csv) and the
gathering job, unchanged and in full mode, to a throwaway local Slurm; the gathered table, figure
and metrics.json go to docs/results/sweep_gather/, which docs/scaling/sweeps.md shows.

Target: every row of the parameter file has a result in the gathered table. The best setting's
accuracy is reported against the worst, the spread the sweep was run to find.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import time

from bench._common import REPO, RESULTS, local_slurm
from bench.table import Row

SECTION = "scaling_sweep"
SWEEP_TIMEOUT_S = 1200


def wait_until_gone(cluster, job_ids: list[str]) -> None:
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while time.monotonic() < deadline:
        listed = cluster.run("squeue", "--noheader", f"--jobs={','.join(job_ids)}", "--format=%i %T %r", check=False).stdout
        if "DependencyNeverSatisfied" in listed:
            cluster.run("scancel", *job_ids, check=False)
            raise RuntimeError(f"a task of the sweep failed, so the gathering job never starts:\n{listed}")
        if not listed.strip():
            return
        time.sleep(2)
    raise RuntimeError(f"the sweep did not finish within {SWEEP_TIMEOUT_S} s")


def rows() -> list[Row]:
    with local_slurm() as (cluster, scratch):
        environment = {key: value for key, value in cluster.environment().items() if key != "WORKSHOP_QUICK"}
        started = time.perf_counter()
        submitted = subprocess.run(
            ["slurm/submit_sweep.sh", "--account=bench", f"--export=ALL,WORKSHOP_VENV={REPO / '.venv'}"],
            cwd=scratch, env=environment, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        array_id = re.search(r"array job: (\d+)", submitted.stdout).group(1)
        gather_id = re.search(r"gathering job: (\d+)", submitted.stdout).group(1)
        wait_until_gone(cluster, [array_id, gather_id])
        seconds = time.perf_counter() - started
        gathered = scratch / "results" / f"sweep_gather_{gather_id}"
        if not (gathered / "metrics.json").is_file():
            raise RuntimeError(f"the gathering job wrote no metrics.json:\n{(scratch / f'sweep_gather_{gather_id}.out').read_text()[-2000:]}")
        target = RESULTS / "sweep_gather"
        shutil.rmtree(target, ignore_errors=True)
        # the page shows the numbers of metrics.json; a .md file in docs/ would become a page of its own
        shutil.copytree(gathered, target, ignore=shutil.ignore_patterns("*.md"))

    metrics = json.loads((target / "metrics.json").read_text())
    with open(REPO / "examples" / "sweep_params.csv", newline="") as file:
        expected = len(list(csv.DictReader(file)))
    best, worst = metrics["best"], min(metrics["table"].values(), key=lambda row: row["validation_accuracy"])
    return [
        Row(SECTION, "settings gathered (rows of examples/sweep_params.csv)", f"{metrics['points']} of {expected}",
            f"{expected} of {expected}", metrics["points"] == expected),
        Row(SECTION, f"best by validation: task {best['task']} (lr {best['learning_rate']:g}, {best['hidden']} hidden)",
            f"validation {best['validation_accuracy']:.2%}, test {best['test_accuracy']:.2%}"),
        Row(SECTION, f"worst: task {worst['task']} (lr {worst['learning_rate']:g}, {worst['hidden']} hidden)",
            f"validation {worst['validation_accuracy']:.2%}"),
        Row(SECTION, "array + gathering job, submission to gathered table (local Slurm)", f"{seconds:.0f} s"),
    ]  # fmt: skip
