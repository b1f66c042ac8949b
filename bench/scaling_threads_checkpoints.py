"""Benchmark: threads (examples/thread_scaling.py) and checkpoints (examples/checkpoint_requeue.py).

Full runs, as `make results` makes them for docs/scaling/threads.md and
docs/scaling/checkpoints.md (tools/full_runs.py):
- thread scaling, run directly with the CPUs this process may use;
- slurm/checkpoint_requeue.sbatch, submitted unchanged twice at once (full mode) to a throwaway
  local Slurm: one job uninterrupted, and one requeued with `scontrol requeue` once its log shows
  epoch 4.

Rows: throughput at 1 thread and at the allocation (2 cores here) and the parallel efficiency,
with no target (a 2-core machine shared with other work: the numbers move from run to run);
the oversubscribed run's speed; the checkpoint's cost as a share of an epoch (target: at most
10%); and whether the requeued job ended with exactly the uninterrupted job's parameters and
metrics (target: identical).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.table import Row
from tools.full_runs import FullRuns

SECTION = "scaling_threads_checkpoints"
CHECKPOINT_SHARE_TARGET = 0.10


def rows() -> list[Row]:
    with FullRuns() as runs:
        threads = runs.recipe("thread_scaling")["thread_scaling"].metrics
        checkpoints = runs.recipe("checkpoint_requeue")
        uninterrupted, requeued = checkpoints["checkpoint_requeue_uninterrupted"], checkpoints["checkpoint_requeue"]
        identical = same_training(uninterrupted.folder, requeued.folder)
    requeued = requeued.metrics
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

