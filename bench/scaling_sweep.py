"""Benchmark: the hyperparameter sweep as a job array plus a gathering job (slurm/submit_sweep.sh).

slurm/submit_sweep.sh submits the array (one task per row of examples/sweep_params.csv) and the
gathering job, unchanged and in full mode, to a throwaway local Slurm, as `make results` does for
docs/results/sweep_gather/ (tools/full_runs.py, sweep_train).

Target: every row of the parameter file has a result in the gathered table. The best setting's
accuracy is reported against the worst, the spread the sweep was run to find.
"""

from __future__ import annotations

import csv

from bench.table import Row
from tools.full_runs import FullRuns
from tools.slurm_cluster import REPO

SECTION = "scaling_sweep"


def rows() -> list[Row]:
    with FullRuns() as runs:
        gathered = runs.recipe("sweep_train")["sweep_gather"]
    metrics, seconds = gathered.metrics, gathered.wall_s
    with open(REPO / "examples" / "sweep_params.csv", newline="") as file:
        expected = len(list(csv.DictReader(file)))
    best, worst = metrics["best"], min(metrics["table"].values(), key=lambda row: row["validation_accuracy"])
    return [
        Row(SECTION, "settings gathered (rows of examples/sweep_params.csv)", f"{metrics['points']} of {expected}",
            f"{expected} of {expected}", metrics["points"] == expected),
        Row(SECTION, f"best by validation: task {best['task']} (learning rate {best['learning_rate']:g})",
            f"validation {best['validation_accuracy']:.2%}, test {best['test_accuracy']:.2%}"),
        Row(SECTION, f"worst: task {worst['task']} (learning rate {worst['learning_rate']:g})",
            f"validation {worst['validation_accuracy']:.2%}"),
        Row(SECTION, "array + gathering job, submission to gathered table (local Slurm)", f"{seconds:.0f} s"),
    ]  # fmt: skip
