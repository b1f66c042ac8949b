"""Pieces the benchmark sections share (modules named with a leading _ are not sections)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results"  # full runs shown on the site


@contextlib.contextmanager
def local_slurm(prefix: str = "bench-slurm-"):
    """A throwaway local Slurm (the tests' own) and a scratch copy of the repository to submit
    from; both are gone afterwards. Yields (cluster, scratch repository)."""
    sys.path.insert(0, str(REPO / "tests"))
    from slurm_cluster import SlurmCluster, missing_requirements
    from slurm_fixtures import scratch_copy

    problem = missing_requirements()
    if problem:
        raise RuntimeError(f"the benchmark submits job files to a local Slurm: {problem}")
    cluster = SlurmCluster.start()
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield cluster, scratch_copy(scratch / "repo")
    finally:
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)


SHOWN_ON_THE_SITE = ("metrics.json", "*.png", "*.csv")


def keep(source: Path, name: str) -> dict:
    """Copy a run's metrics.json, figures and tables into docs/results/<name>/ (replacing the old
    ones; checkpoints and models stay behind); return its metrics."""
    target = RESULTS / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for pattern in SHOWN_ON_THE_SITE:
        for path in source.glob(pattern):
            shutil.copy2(path, target / path.name)
    return json.loads((target / "metrics.json").read_text())


def run_example(example: str, out: Path, *args: str, threads: str | None = None) -> tuple[dict, float, float]:
    """Run examples/<example>.py to the end (full mode unless `--quick` is given); return its
    metrics.json, the wall time and the CPU time in seconds, imports included. The CPU time shows
    how much of the wall time was spent waiting for a busy machine."""
    environment = {key: value for key, value in os.environ.items() if key != "WORKSHOP_QUICK"}
    environment["MPLBACKEND"] = "Agg"
    if threads is not None:
        environment["SLURM_CPUS_PER_TASK"] = threads
    started = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.run(
        [sys.executable, f"examples/{example}.py", "--out", str(out), *args], cwd=REPO, env=environment, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if process.returncode != 0:
        raise RuntimeError(f"{example} {' '.join(args)} failed ({process.returncode}):\n{process.stderr[-2000:]}")
    return json.loads((REPO / out / "metrics.json").read_text()), seconds, cpu_seconds
