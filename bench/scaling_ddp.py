"""Benchmark: data-parallel training (examples/ddp_train.py), 1 process against 2.

Full runs, whose metrics.json the page docs/scaling/ddp.md shows:
- 1 process, run directly, 1 thread        -> docs/results/ddp_single/
- 2 processes, slurm/ddp_srun.sbatch        -> docs/results/ddp_srun/
- 2 processes, slurm/ddp_torchrun.sbatch    -> docs/results/ddp_torchrun/
The two job files are submitted unchanged (full mode: no WORKSHOP_QUICK) to a throwaway local
Slurm (tests/slurm_cluster.py), from a scratch copy of the repository.

Targets: each 2-process run ends within 1 percentage point of the 1-process test accuracy (the
same tolerance as tests/test_ddp.py). Throughput has no target: on a machine of 2 cores, shared
with whatever else runs, 2 processes of a model this small gain little; the rows say what was
measured, with the hardware in metrics.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench._common import REPO, RESULTS, keep, local_slurm
from bench.table import Row

SECTION = "scaling_ddp"
ACCURACY_TOLERANCE = 0.01
JOB_TIMEOUT_S = 900


def submit_unchanged(cluster, scratch: Path, job_file: str, *args: str) -> str:
    """`sbatch --wait` a job file in full mode (no WORKSHOP_QUICK); returns the job id."""
    export = f"--export=ALL,WORKSHOP_VENV={REPO / '.venv'}"
    environment = {key: value for key, value in cluster.environment().items() if key != "WORKSHOP_QUICK"}
    result = subprocess.run(
        ["sbatch", "--wait", "--parsable", "--account=bench", export, *args, job_file],
        cwd=scratch, env=environment, capture_output=True, text=True, timeout=JOB_TIMEOUT_S,
    )  # fmt: skip
    job_id = result.stdout.strip().split(";")[0]
    if result.returncode != 0:
        logs = "\n".join(path.read_text()[-2000:] for path in scratch.glob(f"*_{job_id}*.out"))
        raise RuntimeError(f"{job_file} failed ({result.returncode}): {result.stderr}\n{logs}")
    return job_id


def rows() -> list[Row]:
    environment = {key: value for key, value in os.environ.items() if key != "WORKSHOP_QUICK"}
    environment["SLURM_CPUS_PER_TASK"] = "1"  # the reference: one process, one thread
    out = RESULTS / "ddp_single"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(
        [sys.executable, "examples/ddp_train.py", "--out", str(out.relative_to(REPO))],
        cwd=REPO, env=environment, check=True, capture_output=True, text=True,
    )  # fmt: skip
    runs = {"ddp_single": json.loads((out / "metrics.json").read_text())}

    with local_slurm() as (cluster, scratch):
        for name in ("ddp_srun", "ddp_torchrun"):
            job_id = submit_unchanged(cluster, scratch, f"slurm/{name}.sbatch")
            runs[name] = keep(scratch / "results" / f"{name}_{job_id}", name)

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
