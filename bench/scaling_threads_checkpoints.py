"""Benchmark: threads (examples/thread_scaling.py) and checkpoints (examples/checkpoint_requeue.py).

Full runs, whose metrics.json and figures the pages docs/scaling/threads.md and
docs/scaling/checkpoints.md show:
- thread scaling, run directly with the CPUs this process may use    -> docs/results/thread_scaling/
- slurm/checkpoint_requeue.sbatch, submitted unchanged twice at once (full mode, no WORKSHOP_QUICK)
  to a throwaway local Slurm: one job uninterrupted                  -> docs/results/checkpoint_requeue_uninterrupted/
  and one requeued with `scontrol requeue` once its log shows epoch 4 -> docs/results/checkpoint_requeue/

Rows: throughput at 1 thread and at the allocation (2 cores here) and the parallel efficiency,
with no target (a 2-core machine shared with other work: the numbers move from run to run);
the oversubscribed run's speed; the checkpoint's cost as a share of an epoch (target: at most
10%); and whether the requeued job ended with exactly the uninterrupted job's parameters and
metrics (target: identical).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench._common import REPO, RESULTS, keep, local_slurm
from bench.table import Row

SECTION = "scaling_threads_checkpoints"
CHECKPOINT_SHARE_TARGET = 0.10
TIMEOUT_S = 900


def rows() -> list[Row]:
    threads = run_thread_scaling()
    requeued, uninterrupted, identical = run_checkpoint_jobs()
    table = threads["table"]
    within = [row for row in table if not row["oversubscribed"]]
    share = requeued["timing"]["checkpoint_share"]
    return [
        Row(SECTION, "throughput, 1 thread (images/s)", f"{table[0]['images_per_s']:.0f}"),
        Row(SECTION, f"throughput, {within[-1]['threads']} threads (images/s)", f"{within[-1]['images_per_s']:.0f}"),
        Row(SECTION, f"parallel efficiency at {within[-1]['threads']} threads", f"{within[-1]['efficiency']:.0%}"),
        Row(
            SECTION,
            f"oversubscribed ({table[-1]['threads']} threads): speed vs {within[-1]['threads']}",
            f"{threads['oversubscribed_relative_speed']:.0%}",
        ),
        Row(
            SECTION,
            "checkpoint write, share of an epoch",
            f"{share:.1%} ({requeued['timing']['checkpoint_seconds']:.3f} s of {requeued['timing']['epoch_seconds']:.2f} s)",
            f"<= {CHECKPOINT_SHARE_TARGET:.0%}",
            share <= CHECKPOINT_SHARE_TARGET,
        ),
        Row(
            SECTION,
            f"requeued job (resumed at epoch {requeued['resumed_from']['epoch']}) vs uninterrupted",
            "identical" if identical else "DIFFERENT",
            "identical parameters and metrics",
            identical,
        ),
    ]


def run_thread_scaling() -> dict:
    target = RESULTS / "thread_scaling"
    environment = {key: value for key, value in os.environ.items() if key not in ("WORKSHOP_QUICK", "SLURM_CPUS_PER_TASK")}
    subprocess.run(
        [sys.executable, "examples/thread_scaling.py", "--out", str(target.relative_to(REPO))],
        cwd=REPO, env={**environment, "MPLBACKEND": "Agg"}, check=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    return json.loads((target / "metrics.json").read_text())


def run_checkpoint_jobs() -> tuple[dict, dict, bool]:
    """Two full-mode jobs on a throwaway local Slurm: one uninterrupted, one requeued mid-training."""
    with local_slurm("bench-checkpoint-") as (cluster, repo):
        environment = {key: value for key, value in cluster.environment().items() if key != "WORKSHOP_QUICK"}

        def slurm(*command: str, check: bool = True) -> str:
            return subprocess.run(command, cwd=repo, env=environment, capture_output=True, text=True, check=check).stdout

        submit = ["sbatch", "--parsable", f"--export=ALL,WORKSHOP_VENV={REPO / '.venv'}", "slurm/checkpoint_requeue.sbatch"]
        reference, requeued = (slurm(*submit).strip().split(";")[0] for _ in range(2))
        log = repo / f"checkpoint_requeue_{requeued}.out"
        wait_for(lambda: log.exists() and re.search(r"^epoch 4/", log.read_text(), re.MULTILINE), f"epoch 4 in {log}")
        slurm("scontrol", "requeue", requeued)

        def finished(job_id: str) -> bool:
            # squeue fails ("Invalid job id") once Slurm has forgotten an ended job: also done
            # (a requeued job waits for its old launch credential to expire: 10 s on this cluster)
            state = slurm("squeue", "--noheader", "--jobs", job_id, "--format=%T %r", check=False).strip()
            return not state

        wait_for(lambda: finished(requeued) and finished(reference), "both jobs to end")
        folders = {job: repo / "results" / f"checkpoint_requeue_{job}" for job in (reference, requeued)}
        identical = same_training(folders[reference], folders[requeued])
        for job in (reference, requeued):
            if not (repo / f"checkpoint_requeue_{job}.out").read_text().splitlines()[-1].startswith("result:"):
                raise RuntimeError(f"job {job} did not end with a result line; see {repo}")
        reference_metrics = keep(folders[reference], "checkpoint_requeue_uninterrupted")
        requeued_metrics = keep(folders[requeued], "checkpoint_requeue")
        return requeued_metrics, reference_metrics, identical


def same_training(reference: Path, resumed: Path) -> bool:
    expected, got = (json.loads((folder / "metrics.json").read_text()) for folder in (reference, resumed))
    strip = [[{k: v for k, v in row.items() if k != "start"} for row in m["history"]] for m in (expected, got)]
    models = [torch.load(folder / "model.pt", weights_only=True) for folder in (reference, resumed)]
    return (
        strip[0] == strip[1]
        and all(expected[key] == got[key] for key in ("test_accuracy", "test_loss"))
        and models[0].keys() == models[1].keys()
        and all(torch.equal(models[0][name], models[1][name]) for name in models[0])
    )


def wait_for(condition, what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.2)
