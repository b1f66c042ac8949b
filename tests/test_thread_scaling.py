"""Use what you asked for: the examples take their thread count from the allocation.

1. No example calls os.cpu_count() (on a shared node it counts every core of the machine, most
   of them given to other people's jobs). Checked on the code itself, with Python's parser, so a
   mention in a comment or a string does not count, and the check is shown to fire.
2. examples/thread_scaling.py takes its thread counts from the allocation, not from the cores
   the machine has: the quick run (SLURM_CPUS_PER_TASK=1 on this 2-core machine) measures one
   thread, then two (oversubscribed), each in every round.
3. Inside a Slurm job the thread count is the allocation: the job file submitted with
   --cpus-per-task=1 and =2 uses 1 and 2 threads, although this machine has 2 cores (the local
   Slurm binds no CPUs, so only SLURM_CPUS_PER_TASK can tell the script 1).
"""

import ast
import json
import re

import pytest
from conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.py"))
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
    offenders = [f"examples/{path.name}:{line}" for path in EXAMPLES for line in cpu_count_calls(path.read_text())]
    assert not offenders, (
        "these lines call cpu_count(), which counts every core of the node, not the job's: "
        f"{offenders}; use workshop.cpus_from_allocation() or workshop.use_allocated_threads()"
    )


def test_the_thread_counts_come_from_the_allocation_not_from_the_machine(quick_run):
    run = quick_run("thread_scaling")
    metrics = run.metrics
    assert metrics["slurm_cpus_per_task"] == "1" and metrics["affinity_cpus"] >= 1
    assert metrics["allocated_threads"] == metrics["run"]["threads"] == 1, "SLURM_CPUS_PER_TASK=1 did not give 1 thread"
    oversubscribed = [row["threads"] for row in metrics["table"] if row["oversubscribed"]]
    assert metrics["thread_counts"] == [1, 2] and oversubscribed == [2], metrics["table"]
    rounds = re.findall(r"^round \d+/\d+  1 thread (\d+)  2 threads (\d+)  ", run.process.stdout, re.MULTILINE)
    assert len(rounds) == metrics["repeats"] >= 2, f"expected every count measured in each of the rounds:\n{run.process.stdout}"


# ------------------------------------------------------------------------------------------------
# Inside Slurm
# ------------------------------------------------------------------------------------------------
@pytest.mark.slurm
def test_inside_a_slurm_job_the_thread_count_is_the_allocation(slurm_cluster):
    # --cpus-per-task on sbatch's command line wins over the file's line; both jobs run side by side.
    # The test Slurm's jobs run on the cores the tests leave them (tools/slurm_cluster.py), as a
    # job on Puma runs on its cgroup's: where those are fewer than asked for, that many threads.
    cores = len(slurm_cluster.cluster.job_cores())
    jobs = {cpus: slurm_cluster.launch(JOB_FILE, options=(f"--cpus-per-task={cpus}",), cpus=cpus) for cpus in (1, 2)}
    for cpus, job in jobs.items():
        run = job.wait()
        threads = min(cpus, cores)
        assert run.exit_code == 0, run.explain()
        assert f"SLURM_CPUS_PER_TASK={cpus}\n" in run.log, run.explain()
        assert f"\nthreads: {threads} torch + 0 loader workers = {threads} CPUs (from SLURM_CPUS_PER_TASK)\n" in run.log, run.explain()
        metrics = json.loads((run.results_dir / "metrics.json").read_text())
        assert metrics["allocated_threads"] == metrics["run"]["threads"] == threads
        measured = [row["threads"] for row in metrics["table"] if not row["oversubscribed"]]
        assert max(measured) == threads, metrics["table"]


@pytest.mark.slurm
def test_the_unchanged_job_file_uses_its_cpus_or_the_cores_there_are(slurm_cluster):
    run = slurm_cluster.submit(JOB_FILE)
    assert run.exit_code == 0, run.explain()
    asked = int(run.job.value("--cpus-per-task"))
    # The local Slurm's jobs see the cores it leaves them, fewer than Puma's node has.
    expected = min(asked, len(slurm_cluster.cluster.job_cores()))
    assert f"\nthreads: {expected} torch + 0 loader workers = {expected} CPUs (from SLURM_CPUS_PER_TASK)\n" in run.log, run.explain()
    assert json.loads((run.results_dir / "metrics.json").read_text())["allocated_threads"] == expected
