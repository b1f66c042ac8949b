"""Distributed data-parallel training: 2 processes with the same global batch reach the test
accuracy of 1, under srun and under torchrun, and end cleanly every time.

The 1-process reference is the contract's quick run (tests/example_contracts.py). The job files
slurm/ddp_srun.sbatch and slurm/ddp_torchrun.sbatch are each submitted once, unchanged, to the
local Slurm (the same runs tests/test_job_files.py checks). To catch a teardown that fails only
sometimes, the 2-process script also runs twice in a row under each launcher without Slurm:
torchrun itself, and 2 processes given the variables srun gives its tasks. With the Slurm jobs
(and the DDP page's torchrun block, tests/test_page_code_blocks.py), each launcher's teardown
runs at least 3 times in every test session, each of which must end with exit status 0. And
one run checks the cause of the failure those repetitions caught: a process group that is not
closed when the script leaves it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from tools.job_rules import JobFile

from conftest import REPO, warm_python

SCRIPT = REPO / "examples" / "ddp_train.py"
SRUN_JOB = REPO / "slurm" / "ddp_srun.sbatch"
TORCHRUN_JOB = REPO / "slurm" / "ddp_torchrun.sbatch"
MULTINODE_JOB = REPO / "slurm" / "ddp_multinode.sbatch"
RUNS_IN_A_ROW = 2

# 2 processes see the same images in every step as 1, but each normalizes (batch norm) over its
# own half of the batch and draws its own dropout masks: they train like 1 process with another
# seed. Measured on the quick runs for seeds 0-3: 1 process scored 98.61% to 99.72% on the test
# images, and 2 processes were within 0.83 points of 1 at every seed. So 2 points (7 of the 360
# test images) is the tolerance. A batch that is not split (each process taking the whole global
# batch, and so half the steps) is caught by the steps per epoch, not by the accuracy.
ACCURACY_TOLERANCE = 0.02


def one_process(quick_run) -> dict:
    return quick_run("ddp_train").metrics


def assert_same_training_as_one_process(metrics: dict, reference: dict, how: str) -> None:
    assert metrics["processes"] == 2 and metrics["per_process_batch"] * 2 == reference["global_batch"], (
        f"{how}: expected 2 processes with half the global batch of {reference['global_batch']} each, got {metrics}"
    )
    assert metrics["steps_per_epoch"] == reference["steps_per_epoch"], (
        f"{how}: {metrics['steps_per_epoch']} optimizer steps per epoch, but 1 process takes {reference['steps_per_epoch']}"
    )
    gap = abs(metrics["test_accuracy"] - reference["test_accuracy"])
    assert gap <= ACCURACY_TOLERANCE, (
        f"{how}: test accuracy {metrics['test_accuracy']:.2%} is {gap:.2%} from 1 process's {reference['test_accuracy']:.2%}"
    )


@pytest.mark.slurm
@pytest.mark.parametrize("job_file", [SRUN_JOB, TORCHRUN_JOB], ids=lambda path: path.stem)
def test_two_processes_on_slurm_reach_the_test_accuracy_of_one_with_one_thread_each(job_file, slurm_cluster, quick_run):
    run = slurm_cluster.submit(job_file)
    assert run.exit_code == 0, run.explain()
    metrics = json.loads((run.results_dir / "metrics.json").read_text())
    assert_same_training_as_one_process(metrics, one_process(quick_run), job_file.name)
    launcher = "srun" if job_file == SRUN_JOB else "torchrun"
    for rank in (0, 1):
        assert f"rank {rank} of 2 (started by {launcher}) on " in run.log, f"rank {rank} did not log its start\n{run.explain()}"
    assert run.log.count(": 1 thread(s), device cpu, batch 32 of 64") == 2, f"each of the 2 processes should use 1 thread\n{run.explain()}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_processes(launcher: str, out) -> list[subprocess.Popen]:
    """The script's 2 processes as `launcher` starts them, 1 thread each, for 1 epoch: what is
    tested here is how they end, and most of a run's time goes to importing torch."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "WORKSHOP_QUICK"))}
    environment |= {"SLURM_CPUS_PER_TASK": "2" if launcher == "torchrun" else "1"}
    arguments = [str(SCRIPT), "--quick", "--epochs", "1", "--out", str(out)]
    if launcher == "torchrun":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *arguments]
        return [subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    # What srun gives each of 2 tasks, and what slurm/ddp_srun.sbatch exports for them.
    address = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "SLURM_STEP_ID": "0", "SLURM_NTASKS": "2"}
    return [
        subprocess.Popen(
            [sys.executable, *arguments],
            cwd=REPO,
            env=environment | address | {"SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]


@pytest.mark.parametrize("launcher", ["srun", "torchrun"])
def test_two_processes_end_cleanly_run_after_run(launcher, tmp_path):
    for attempt in range(1, RUNS_IN_A_ROW + 1):
        out = tmp_path / f"run_{attempt}"
        processes = two_processes(launcher, out)
        outputs = [process.communicate(timeout=300)[0] for process in processes]
        failed = [(rank, process.returncode) for rank, process in enumerate(processes) if process.returncode != 0]
        assert not failed, (
            f"run {attempt} of {RUNS_IN_A_ROW} under {launcher} failed: (process, exit status) {failed}\n"
            + "\n".join(outputs)[-4000:]
        )
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["processes"] == 2 and metrics["launcher"] == launcher, metrics


# The script, run in a fresh Python (the warm one has imported most of torch already, and the
# script must import torch.distributed.nn itself), with a look at its threads just after it
# leaves the process group.
LEAVE_AND_LOOK_AT_THE_THREADS = """
import glob, runpy, sys
import torch.distributed as dist

script, out = sys.argv[1:]
leave = dist.destroy_process_group
threads_left = []

def leave_and_look():
    leave()
    names = (open(path).read().strip() for path in glob.glob("/proc/self/task/*/comm"))
    threads_left.extend(name for name in names if "gloo" in name)

dist.destroy_process_group = leave_and_look
sys.path.insert(0, script.rsplit("/", 1)[0])
sys.argv = [script, "--quick", "--epochs", "1", "--out", out]
runpy.run_path(script, run_name="__main__")
print("gloo threads left:", threads_left)
"""


def test_leaving_the_process_group_closes_it_so_that_no_gloo_thread_outlives_python(tmp_path):
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "WORKSHOP_QUICK"))}
    command = [sys.executable, "-c", LEAVE_AND_LOOK_AT_THE_THREADS, str(SCRIPT), str(tmp_path)]
    process = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "gloo threads left: []" in process.stdout, (
        "the group's threads still run after dist.destroy_process_group(), so they can outlive Python and abort the "
        "process at exit; something still holds the group (a model wrapped in DDP, or torch.distributed.nn imported "
        f"after init_process_group):\n{process.stdout[-1500:]}"
    )


TORCHRUN_RANK_0 = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}
SRUN_RANK_0 = {"SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NTASKS": "2"}


@pytest.mark.parametrize(
    "environment, args, named",
    [
        (TORCHRUN_RANK_0, ("--batch-size", "63"), "--batch-size 63 does not split evenly over 2 processes"),
        (SRUN_RANK_0, (), "MASTER_ADDR or MASTER_PORT is not set"),
    ],
    ids=["a global batch that does not split", "srun without MASTER_ADDR"],
)
def test_a_launch_that_cannot_work_stops_in_one_line_before_joining_the_group(environment, args, named, tmp_path):
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "MASTER_", "WORKSHOP_QUICK"))}
    # In the warm Python: the script stops before its first collective, so it needs no fresh start.
    process = warm_python().run([str(SCRIPT), "--quick", *args, "--out", str(tmp_path)], cwd=REPO, env=clean | environment, timeout=120)
    assert process.returncode == 2 and named in process.stderr, f"exit status {process.returncode}:\n{process.stderr}"
    assert len(process.stderr.strip().splitlines()) == 1, f"expected one line on stderr:\n{process.stderr}"


def test_the_multinode_job_file_starts_one_process_per_gpu_on_each_node():
    job = JobFile.read(MULTINODE_JOB, REPO)
    gpus_per_node = int(job.value("--gres").rsplit(":", 1)[1])
    assert int(job.value("--nodes")) == 2 and int(job.value("--ntasks-per-node")) == gpus_per_node, (
        f"{MULTINODE_JOB.name}: --ntasks-per-node={job.value('--ntasks-per-node')} should equal the GPUs per node ({gpus_per_node})"
    )
