"""Benchmark: the physics-informed network for Burgers' equation (examples/burgers_pinn.py).

Full mode, three seeds (errors vary a lot from seed to seed, so the targets are on the median),
in a scratch copy of the repository (`make results` writes what the site shows). Targets (issue 5), on this 2-core machine: relative L2 error at
most the paper's 6.7e-4 within 10 minutes (stretch: 2e-4); the time to reach 1e-3 is reported
from each run's error-vs-time history. Full runs use the CPUs this process may use
(SLURM_CPUS_PER_TASK if set, else its CPU affinity): run it on an idle machine.

Quick mode (what CI runs), one thread as in the tests: at most 20 s, imports included. Issue 5
asked for an error around 1e-2 from a 40 s quick mode; the redesign (issue 10) caps every quick
mode at a few seconds of compute, and such a short run only shows that training works: its error
must be well below an untrained network's (about 0.6).

BENCH_SEEDS=1 runs the full mode for seed 0 only (about a third of the time, no median).
"""

import os
import statistics

from bench.table import Row
from tools.full_runs import FullRuns

SECTION = "burgers_pinn"
PAPER_ERROR = 6.7e-4  # Raissi, Perdikaris & Karniadakis 2019
STRETCH_ERROR = 2e-4
FULL_TARGET_S = 600
QUICK_TARGET_S = 20
QUICK_ERROR_TARGET = 0.4  # an untrained network scores about 0.6


def rows() -> list[Row]:
    seeds = range(int(os.environ.get("BENCH_SEEDS", "3")))
    with FullRuns() as runs:
        full = [runs.script("burgers_pinn", "--seed", str(seed), out=f"results/burgers_pinn_seed{seed}") for seed in seeds]
        quick_run = runs.script("burgers_pinn", "--quick", threads=1, out="results/burgers_pinn_quick")
    quick, quick_s, quick_cpu_s = quick_run.metrics, quick_run.wall_s, quick_run.cpu_s

    errors = [run.metrics["rel_l2_error"] for run in full]
    seconds = [run.wall_s for run in full]
    cpu_seconds = [run.cpu_s for run in full]
    to_1e3 = [run.metrics["time_to_error_1e-3_s"] for run in full]
    error, wall = statistics.median(errors), statistics.median(seconds)
    settings, threads = full[0].metrics["settings"], full[0].metrics["run"]["threads"]
    of_seeds = f"median of {len(full)} seeds" if len(full) > 1 else "seed 0 only"
    what = (
        f"{settings['layers']}x{settings['width']}, {settings['points']} points, {settings['adam_steps']} Adam + "
        f"{settings['lbfgs_steps']} L-BFGS, {threads} thread(s)"
    )
    each_error = ", ".join(f"{e:.2e}" for e in errors)
    each_time = ", ".join(f"{s:.0f}" for s in seconds)
    return [
        Row(
            SECTION,
            f"full: relative L2 error, {of_seeds} ({what})",
            f"{error:.2e} (each: {each_error})",
            f"<= {PAPER_ERROR:g} (paper)",
            error <= PAPER_ERROR,
        ),
        Row(SECTION, "full: relative L2 error, stretch", f"{error:.2e}", f"<= {STRETCH_ERROR:g}", error <= STRETCH_ERROR),
        Row(
            SECTION,
            f"full: wall time, imports included, {of_seeds}",
            f"{wall:.0f} s (CPU {statistics.median(cpu_seconds):.0f} s; each: {each_time} s)",
            f"<= {FULL_TARGET_S} s",
            wall <= FULL_TARGET_S,
        ),
        Row(
            SECTION,
            "full: training time to reach an error of 1e-3, each seed",
            ", ".join("never" if s is None else f"{s:.0f} s" for s in to_1e3),
        ),
        Row(
            SECTION,
            "quick: relative L2 error (1 thread)",
            f"{quick['rel_l2_error']:.2e}",
            f"<= {QUICK_ERROR_TARGET:g} (around 1e-2)",
            quick["rel_l2_error"] <= QUICK_ERROR_TARGET,
        ),
        Row(
            SECTION,
            "quick: wall time, imports included (1 thread)",
            f"{quick_s:.0f} s (CPU {quick_cpu_s:.0f} s)",
            f"<= {QUICK_TARGET_S} s",
            quick_s <= QUICK_TARGET_S,
        ),
    ]
