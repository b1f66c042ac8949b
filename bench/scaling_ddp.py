"""Benchmark: data-parallel training (examples/ddp_train.py), 1 process against 2.

Full runs, as `make results` makes them for docs/scaling/ddp.md (tools/full_runs.py, ddp_train):
1 process run directly with 1 thread, then 2 processes with slurm/ddp_srun.sbatch and with
slurm/ddp_torchrun.sbatch, submitted unchanged (full mode) to a throwaway local Slurm.

Targets: each 2-process run ends within 1 percentage point of the 1-process test accuracy (the
same tolerance as tests/test_ddp.py). Throughput has no target: on a machine of 2 cores, shared
with whatever else runs, 2 processes of a model this small gain little; the rows say what was
measured, with the hardware in metrics.json.
"""

from __future__ import annotations

from bench.table import Row
from tools.full_runs import FullRuns

SECTION = "scaling_ddp"
ACCURACY_TOLERANCE = 0.01


def rows() -> list[Row]:
    with FullRuns() as full_runs:
        runs = {name: run.metrics for name, run in full_runs.recipe("ddp_train").items()}

    single = runs["ddp_single"]
    table = []
    for name, metrics in runs.items():
        how = "1 process" if name == "ddp_single" else f"2 processes, {metrics['launcher']} (gloo)"
        table.append(Row(SECTION, f"{how}: training throughput", f"{metrics['train_images_per_s']:.0f} images/s"))
        if name == "ddp_single":
            table.append(Row(SECTION, f"{how}: test accuracy (reference)", f"{metrics['test_accuracy']:.2%}"))
        else:
            gap = abs(metrics["test_accuracy"] - single["test_accuracy"])
            table.append(
                Row(
                    SECTION,
                    f"{how}: test accuracy",
                    f"{metrics['test_accuracy']:.2%} ({gap * 100:.2f} points from 1 process)",
                    f"within {ACCURACY_TOLERANCE * 100:.0f} point of 1 process",
                    gap <= ACCURACY_TOLERANCE,
                )
            )
            table.append(
                Row(SECTION, f"{how}: speed-up over 1 process", f"{metrics['train_images_per_s'] / single['train_images_per_s']:.2f}x")
            )
    return table
