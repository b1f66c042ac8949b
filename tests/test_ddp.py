"""Distributed data-parallel training: 2 processes reach the accuracy of 1.

1. The srun job file and the torchrun job file, each with 2 processes on gloo on the local
   Slurm, end with the test accuracy of a direct 1-process run of the same script (same seed,
   same global batch), within ACCURACY_TOLERANCE; every process used 1 thread, as allocated.
2. Wrong set-ups stop with one line: a global batch that does not split over the processes,
   srun without MASTER_ADDR.
3. The 2-node x 4-GPU job file follows Puma's rules; the one-node test Slurm refuses it for its
   node count only, and accepts it once shrunk to its one node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO
from job_rules import JobFile, check

SCRIPT = REPO / "examples" / "ddp_train.py"
SRUN_JOB = REPO / "slurm" / "ddp_srun.sbatch"
TORCHRUN_JOB = REPO / "slurm" / "ddp_torchrun.sbatch"
MULTINODE_JOB = REPO / "slurm" / "ddp_multinode.sbatch"

# Same batches, same seed: the runs differ only in floating-point rounding (two half-batch means
# averaged, instead of one mean), which training can amplify. One percentage point is 3-4 of the
# 360 test images; a real mistake (each process taking the whole batch, a different shuffle,
# gradients not averaged) moves the quick run's accuracy by far more.
ACCURACY_TOLERANCE = 0.01


def run_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The script as a plain process: no Slurm variables but those given."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "RANK", "WORLD_SIZE", "MASTER_"))}
    environment.update({"WORKSHOP_QUICK": "1", **env})
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    """The reference: one process, no torch.distributed, one thread."""
    out = tmp_path_factory.mktemp("ddp_one_process")
    result = run_script("--out", str(out), env={"SLURM_CPUS_PER_TASK": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("result: processes=1 "), result.stdout
    return json.loads((out / "metrics.json").read_text())


# ------------------------------------------------------------------------------------------------
# 1. Two processes under Slurm, two launchers
# ------------------------------------------------------------------------------------------------
@pytest.mark.slurm
@pytest.mark.parametrize("job_file", [SRUN_JOB, TORCHRUN_JOB], ids=lambda path: path.stem)
def test_two_processes_on_slurm_reach_the_test_accuracy_of_one_process(job_file, one_process, slurm_cluster):
    run = slurm_cluster.submit(job_file)
    assert run.exit_code == 0, run.explain()
    metrics = json.loads((run.results_dir / "metrics.json").read_text())

    assert metrics["processes"] == 2 and metrics["backend"] == "gloo", metrics
    assert metrics["launcher"] == ("srun" if job_file == SRUN_JOB else "torchrun")
    # the same global batch, split in two, and so the same number of optimizer steps
    assert (metrics["global_batch"], metrics["per_process_batch"]) == (one_process["global_batch"], one_process["global_batch"] // 2)
    assert metrics["steps_per_epoch"] == one_process["steps_per_epoch"]
    # the same images in every step: the first epoch's mean loss agrees to rounding
    first, reference = metrics["first_epoch_train_loss"], one_process["first_epoch_train_loss"]
    assert first == pytest.approx(reference, rel=1e-4), (first, reference)
    assert abs(metrics["test_accuracy"] - one_process["test_accuracy"]) <= ACCURACY_TOLERANCE, (
        f"2 processes ({job_file.stem}): test accuracy {metrics['test_accuracy']:.4f}; "
        f"1 process: {one_process['test_accuracy']:.4f}"
    )


@pytest.mark.slurm
@pytest.mark.parametrize("job_file", [SRUN_JOB, TORCHRUN_JOB], ids=lambda path: path.stem)
def test_each_of_the_two_processes_logs_its_rank_and_uses_one_thread(job_file, slurm_cluster):
    run = slurm_cluster.submit(job_file)
    assert run.exit_code == 0, run.explain()
    launcher = "srun" if job_file == SRUN_JOB else "torchrun"
    for rank in (0, 1):
        assert f"rank {rank} of 2 (started by {launcher}) on " in run.log, run.explain()
    assert run.log.count(": 1 thread(s), device cpu, batch 32 of 64") == 2, run.explain()
    # only rank 0 reports: one progress line per epoch, one result line, at the end
    assert run.log.count("result: ") == 1 and run.log.strip().splitlines()[-1].startswith("result: processes=2 ")


# ------------------------------------------------------------------------------------------------
# 2. Wrong set-ups: one line, exit code 2
# ------------------------------------------------------------------------------------------------
def test_a_global_batch_that_does_not_split_over_the_processes_stops_with_one_line(tmp_path):
    # As torchrun would start rank 0 of 2; the check comes before any process tries to connect.
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2", "SLURM_CPUS_PER_TASK": "2"}
    result = run_script("--batch-size", "63", "--out", str(tmp_path), env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert "--batch-size 63 does not split evenly over 2 processes" in result.stderr


def test_srun_without_master_addr_stops_with_one_line_naming_the_job_file_to_copy(tmp_path):
    env = {"SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NTASKS": "2", "SLURM_CPUS_PER_TASK": "1"}
    result = run_script("--out", str(tmp_path), env=env)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "MASTER_ADDR is not set" in result.stderr and "slurm/ddp_srun.sbatch" in result.stderr


# ------------------------------------------------------------------------------------------------
# 3. The multi-node job file: rules, and what the one-node test Slurm can say about it
# ------------------------------------------------------------------------------------------------
def test_the_multinode_job_file_asks_for_one_process_per_gpu_on_two_nodes_and_follows_pumas_rules():
    job = JobFile.read(MULTINODE_JOB, REPO)
    assert not check(MULTINODE_JOB, REPO)
    assert job.not_runnable_reason, "the job file must say why the tests cannot run it"
    assert job.value("--nodes") == "2"
    gpus_per_node = int(job.value("--gres").rsplit(":", 1)[1])
    assert int(job.value("--ntasks-per-node")) == gpus_per_node == 4, "one process per GPU"
    assert "srun " in MULTINODE_JOB.read_text() and "module load python/3.11 cuda12" in MULTINODE_JOB.read_text()


@pytest.mark.slurm
def test_the_one_node_test_slurm_refuses_the_multinode_job_only_for_its_node_count(slurm_cluster):
    def test_only(*overrides: str) -> subprocess.CompletedProcess:
        command = ["sbatch", "--test-only", *slurm_cluster.submit_args(MULTINODE_JOB), *overrides, "slurm/ddp_multinode.sbatch"]
        return slurm_cluster.run(*command, cwd=REPO)

    as_written = test_only()
    assert as_written.returncode != 0 and "Node count specification invalid" in as_written.stderr, as_written.stderr
    # The same file, shrunk on the command line (which wins over #SBATCH lines) to this cluster's
    # one node (a Puma GPU node, 4 stand-in GPUs): everything else in it (partition, time, CPUs,
    # 4 GPUs and 4 processes per node, log) is accepted.
    scaled_down = test_only("--nodes=1")
    assert scaled_down.returncode == 0, scaled_down.stderr
    assert "in partition gpu_windfall" in scaled_down.stderr, scaled_down.stderr
