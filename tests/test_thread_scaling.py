"""Use what you asked for: the examples take their thread count from the allocation.

1. No example calls os.cpu_count() (on a shared node it counts every core of the machine, most
   of them given to other people's jobs). Checked on the code itself, with Python's parser, so a
   mention in a comment or a string does not count, and the check is shown to fire.
2. examples/thread_scaling.py measures 1, 2, ... threads up to the allocation and once
   oversubscribed, and writes the table.
3. Inside a Slurm job the thread count is the allocation: the job file submitted with
   --cpus-per-task=1 and =2 logs "threads: 1" and "threads: 2", although this machine has 2 cores
   (the local Slurm binds no CPUs, so only SLURM_CPUS_PER_TASK can tell the script 1).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.py"))
SCRIPT = REPO / "examples" / "thread_scaling.py"
JOB_FILE = REPO / "slurm" / "thread_scaling.sbatch"


def cpu_count_calls(source: str) -> list[int]:
    """Line numbers of calls to os.cpu_count(), multiprocessing.cpu_count() or a bare cpu_count()
    (after `from os import cpu_count`) in Python source."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
            if name == "cpu_count":
                lines.append(node.lineno)
    return lines


def test_the_cpu_count_check_finds_real_calls_and_ignores_comments_and_strings():
    source = (
        "import os, multiprocessing\n"
        "from os import cpu_count\n"
        "# os.cpu_count() in a comment\n"
        'text = "never os.cpu_count()"\n'
        "a = os.cpu_count()\n"
        "b = multiprocessing.cpu_count()\n"
        "c = cpu_count()\n"
    )
    assert cpu_count_calls(source) == [5, 6, 7]


def test_no_example_calls_os_cpu_count():
    assert EXAMPLES, "found no example scripts in examples/ to check"
    offenders = [
        f"examples/{path.name}:{line}" for path in EXAMPLES for line in cpu_count_calls(path.read_text())
    ]
    assert not offenders, (
        "these lines call cpu_count(), which counts every core of the node, not the job's: "
        f"{offenders}; use workshop.cpus_from_allocation() or workshop.use_allocated_threads()"
    )


def test_thread_scaling_measures_up_to_the_allocation_then_oversubscribed(tmp_path):
    environment = {**os.environ, "SLURM_CPUS_PER_TASK": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "threads: 1 (from SLURM_CPUS_PER_TASK)"
    assert result.stdout.splitlines()[-1].startswith("result: threads=1 ")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [(row["threads"], row["oversubscribed"]) for row in metrics["table"]] == [(1, False), (2, True)]
    assert metrics["table"][0]["efficiency"] == 1.0
    assert all(row["images_per_s"] > 0 for row in metrics["table"])
    assert (tmp_path / "thread_scaling.png").stat().st_size > 10_000


def test_thread_counts_are_powers_of_two_then_the_allocation():
    sys.path.insert(0, str(REPO / "examples"))
    from thread_scaling import thread_counts

    assert [thread_counts(n) for n in (1, 2, 3, 8, 12)] == [[1], [1, 2], [1, 2, 3], [1, 2, 4, 8], [1, 2, 4, 8, 12]]


# ------------------------------------------------------------------------------------------------
# Inside Slurm
# ------------------------------------------------------------------------------------------------
def submit_with_cpus(slurm_cluster, cpus: int) -> tuple[int, str, Path]:
    """Submit the job file unchanged, with --cpus-per-task on sbatch's command line (which wins
    over the file's #SBATCH line); returns sbatch's exit code, the job's log and its results."""
    from slurm_fixtures import scratch_copy

    scratch = scratch_copy(slurm_cluster.scratch_root / f"thread_scaling_cpus_{cpus}")
    command = ["sbatch", "--wait", *slurm_cluster.submit_args(JOB_FILE), f"--cpus-per-task={cpus}", "slurm/thread_scaling.sbatch"]
    result = slurm_cluster.run(*command, cwd=scratch, timeout=300)
    job_id = re.search(r"Submitted batch job (\d+)", result.stdout).group(1)
    log = (scratch / f"thread_scaling_{job_id}.out").read_text()
    return result.returncode, log, scratch / "results" / f"thread_scaling_{job_id}"


@pytest.mark.slurm
def test_inside_a_slurm_job_the_thread_count_is_the_allocation(slurm_cluster):
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip((1, 2), pool.map(lambda cpus: submit_with_cpus(slurm_cluster, cpus), (1, 2))))
    for cpus, (exit_code, log, results) in runs.items():
        assert exit_code == 0, log
        assert f"SLURM_CPUS_PER_TASK={cpus}\n" in log, log
        assert f"\nthreads: {cpus} (from SLURM_CPUS_PER_TASK)\n" in log, log
        metrics = json.loads((results / "metrics.json").read_text())
        assert metrics["allocated_threads"] == metrics["run"]["threads"] == cpus
        measured = [row["threads"] for row in metrics["table"] if not row["oversubscribed"]]
        assert max(measured) == cpus, metrics["table"]


@pytest.mark.slurm
def test_the_unchanged_job_file_uses_its_cpus_or_the_cores_there_are(slurm_cluster):
    run = slurm_cluster.submit(JOB_FILE)
    assert run.exit_code == 0, run.explain()
    asked = int(run.job.value("--cpus-per-task"))
    # The local Slurm binds no CPUs: a job sees this machine's cores, fewer than Puma's node has.
    expected = min(asked, len(os.sched_getaffinity(0)))
    assert f"\nthreads: {expected} (from SLURM_CPUS_PER_TASK)\n" in run.log, run.explain()
    assert json.loads((run.results_dir / "metrics.json").read_text())["allocated_threads"] == expected
