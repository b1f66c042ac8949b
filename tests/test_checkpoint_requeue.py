"""Checkpoint and requeue, tested as faults: stopping a run must not change its result.

1. A process killed (SIGKILL) while it writes a checkpoint leaves the previous checkpoint whole
   and loadable (with torch.load(weights_only=True), as the example loads it).
2. Without Slurm: a quick run stopped by SIGUSR1 mid-training and started again ends with exactly
   the parameters, optimizer state and metrics of the quick run that was never stopped.
3. On the local Slurm, the job file submitted unchanged (quick mode, with more epochs so that
   there is time to interrupt it twice) and compared with an uninterrupted run of the same seed
   and epochs (outside Slurm, with as many threads as the job: the same training, bit for bit).
   One job meets both interruptions, one in each of its first two starts:
   - requeued mid-training with `scontrol requeue` (what preemption on windfall does): Slurm
     sends SIGTERM, the job goes back to the queue, starts again and resumes;
   - then sent SIGUSR1 as before its time limit (`scancel --signal=USR1 --batch`, what
     `--signal=B:USR1@300` does): the job file's trap has the Python save, then requeues itself.
   Its third start ends with the uninterrupted run's parameters and metrics, bit for bit.
4. A checkpoint that cannot be read is refused, and left in place for a person to look at.

The interruptions wait for a log line ("epoch 1/", "epoch 2/"), never for a fixed time, and each
test checks in the log that the interruption landed mid-training.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tools.job_rules import JobFile
from tools.slurm_jobs import JobRun
from conftest import REPO, run_script

from checkpoint_requeue import load_checkpoint

SCRIPT = REPO / "examples" / "checkpoint_requeue.py"
JOB_FILE = REPO / "slurm" / "checkpoint_requeue.sbatch"
SLURM_EPOCHS = "8"  # quick mode's 2 epochs end too soon after "epoch 2/" to requeue the job in between


# ------------------------------------------------------------------------------------------------
# 1. Killed while writing
# ------------------------------------------------------------------------------------------------
WRITER = """
import sys, torch
from pathlib import Path
from checkpoint_requeue import save_checkpoint
version = 0
while True:
    version += 1
    save_checkpoint({"settings": {}, "version": version, "weights": torch.full((16_000_000,), float(version))}, Path(sys.argv[1]))
"""


def test_a_process_killed_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path):
    path = tmp_path / "checkpoint.pt"
    environment = {**os.environ, "PYTHONPATH": str(REPO / "examples")}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=environment)
    try:
        # Wait until one checkpoint is complete and the next one is being written.
        deadline = time.monotonic() + 120
        while not (path.exists() and list(tmp_path.glob(".checkpoint.pt.*.tmp"))):
            assert writer.poll() is None, "the writer process ended by itself"
            assert time.monotonic() < deadline, "the writer never got to its second checkpoint"
            time.sleep(0.01)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    finally:
        if writer.poll() is None:
            writer.kill()
    unfinished = list(tmp_path.glob(".checkpoint.pt.*.tmp"))
    assert unfinished, "no unfinished temporary file: the kill did not land during a write"
    saved = load_checkpoint(path, settings={})
    assert saved["version"] >= 1
    assert torch.equal(saved["weights"], torch.full((16_000_000,), float(saved["version"]))), "the checkpoint is not whole"


# ------------------------------------------------------------------------------------------------
# 2. Stopped and resumed, without Slurm
# ------------------------------------------------------------------------------------------------
def run_until_signalled(out: Path, after_line: str) -> str:
    """A quick run that gets SIGUSR1 as soon as it prints a line starting with `after_line`."""
    environment = {**os.environ, "SLURM_CPUS_PER_TASK": "1", "MPLBACKEND": "Agg"}
    environment.pop("WORKSHOP_QUICK", None)
    command = [sys.executable, str(SCRIPT), "--quick", "--out", str(out)]
    process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith(after_line) and process.poll() is None:
            process.send_signal(signal.SIGUSR1)
    assert process.wait(timeout=300) == 0, "".join(output)
    return "".join(output)


def assert_same_training(reference: Path, resumed: Path, explain: str = "") -> None:
    """Same metrics epoch by epoch, and the same parameters and optimizer state, bit for bit."""
    expected, got = (json.loads((folder / "metrics.json").read_text()) for folder in (reference, resumed))
    for key in ("test_accuracy", "test_loss", "epochs"):
        assert got[key] == expected[key], f"{key} is {got[key]} after resuming, {expected[key]} uninterrupted\n{explain}"
    without_start = [[{k: v for k, v in row.items() if k != "start"} for row in m["history"]] for m in (expected, got)]
    assert without_start[1] == without_start[0], f"the per-epoch metrics differ from the uninterrupted run's\n{explain}"
    expected_state, got_state = (torch.load(folder / "checkpoint.pt", weights_only=True) for folder in (reference, resumed))
    different = [name for name, tensor in expected_state["model"].items() if not torch.equal(tensor, got_state["model"][name])]
    assert not different, f"these parameters differ from the uninterrupted run's: {different}\n{explain}"
    for number, state in expected_state["optimizer"]["state"].items():
        got_optimizer = got_state["optimizer"]["state"][number]
        assert all(torch.equal(value, got_optimizer[name]) for name, value in state.items()), f"Adam's state differs\n{explain}"


def test_a_run_stopped_by_a_signal_and_started_again_ends_as_if_never_stopped(quick_run, tmp_path):
    uninterrupted = quick_run("checkpoint_requeue")
    first = run_until_signalled(tmp_path, after_line="epoch 1/")
    stopped = re.search(r"^stopped by SIGUSR1 at epoch (\d+), batch (\d+)/", first, re.MULTILINE)
    assert stopped and "result:" not in first, f"the signal did not stop the run mid-training:\n{first}"

    second = run_script(SCRIPT, "--quick", "--out", str(tmp_path), env={"SLURM_RESTART_COUNT": "1"})
    assert second.returncode == 0, second.stderr
    resumed_at = f"resuming from {tmp_path / 'checkpoint.pt'}: epoch {stopped.group(1)}, batch {stopped.group(2)}"
    assert resumed_at in second.stdout, second.stdout
    assert "starts=2" in second.stdout.splitlines()[-1], second.stdout
    assert_same_training(uninterrupted.out, tmp_path, first + second.stdout)


def test_a_checkpoint_that_cannot_be_read_is_refused_and_kept(tmp_path):
    damaged = tmp_path / "checkpoint.pt"
    damaged.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    process = run_script(SCRIPT, "--quick", "--out", str(tmp_path))
    assert process.returncode == 2 and f"cannot read the checkpoint {damaged}" in process.stderr, process.stderr
    assert damaged.read_bytes() == b"PK\x03\x04 not a whole checkpoint", "the unreadable checkpoint was overwritten"


# ------------------------------------------------------------------------------------------------
# 3. On the local Slurm
# ------------------------------------------------------------------------------------------------
def job_threads(slurm_cluster) -> int:
    """The torch threads the job trains with: its CPUs, or the cores the test Slurm gives its jobs."""
    return min(int(JobFile.read(JOB_FILE).value("--cpus-per-task")), len(slurm_cluster.cluster.job_cores()))


@pytest.fixture(scope="module")
def uninterrupted_run(slurm_cluster, tmp_path_factory) -> Path:
    """The same training, never interrupted: same seed and epochs, as many threads as the job."""
    out = tmp_path_factory.mktemp("uninterrupted")
    threads = str(job_threads(slurm_cluster))
    process = run_script(SCRIPT, "--quick", "--epochs", SLURM_EPOCHS, "--out", str(out), env={"SLURM_CPUS_PER_TASK": threads})
    assert process.returncode == 0 and "starts=1" in process.stdout.strip().splitlines()[-1], process.stderr
    return out


@pytest.fixture(scope="module")
def job_interrupted_twice(slurm_cluster) -> JobRun:
    """The job, requeued once it has trained two epochs, then, once its second start has trained
    an epoch, signalled as before its time limit; it ends in its third start."""
    job = slurm_cluster.launch(JOB_FILE, script_args=("--epochs", SLURM_EPOCHS))
    job.wait_for_line(r"^epoch 2/")
    slurm_cluster.run("scontrol", "requeue", str(job.id), check=True)
    job.wait_for_line(r"^start 2 of this job[\s\S]*^epoch \d+/")
    slurm_cluster.run("scancel", "--signal=USR1", "--batch", str(job.id), check=True)
    run = job.wait()
    assert run.exit_code == 0 and run.log.splitlines()[-1].startswith("result: "), run.explain()
    return run


def resumed_epochs(log: str) -> list[int]:
    return [int(epoch) for epoch in re.findall(r"^resuming from \S+: epoch (\d+), batch \d+$", log, re.MULTILINE)]


@pytest.mark.slurm
def test_a_job_requeued_mid_training_starts_again_and_resumes_from_its_checkpoint(job_interrupted_twice):
    run = job_interrupted_twice
    assert "DUE TO JOB REQUEUE" in run.log, f"the job was not requeued by Slurm\n{run.explain()}"
    assert "start 2 of this job (SLURM_RESTART_COUNT=1)" in run.log, run.explain()
    resumed = resumed_epochs(run.log)
    assert resumed and 2 < resumed[0] <= int(SLURM_EPOCHS), f"its second start did not resume mid-training\n{run.explain()}"


@pytest.mark.slurm
def test_a_job_signalled_before_its_time_limit_saves_requeues_itself_and_resumes(job_interrupted_twice):
    run = job_interrupted_twice
    assert re.search(r"^stopped by SIGUSR1 at epoch \d+, batch \d+/", run.log, re.MULTILINE), f"the Python did not save on SIGUSR1\n{run.explain()}"
    assert "start 3 of this job (SLURM_RESTART_COUNT=2)" in run.log, f"the job did not requeue itself\n{run.explain()}"
    resumed = resumed_epochs(run.log)
    assert len(resumed) == 2 and resumed[0] < resumed[1] <= int(SLURM_EPOCHS), (
        f"its third start did not resume mid-training, after the second: resumed at epochs {resumed}\n{run.explain()}"
    )


@pytest.mark.slurm
def test_a_job_interrupted_twice_ends_as_if_never_stopped(job_interrupted_twice, slurm_cluster, uninterrupted_run):
    run = job_interrupted_twice
    assert "starts=3" in run.log.splitlines()[-1], run.explain()
    threads = job_threads(slurm_cluster)
    assert f"threads: {threads} torch" in run.log, f"the job should train on {threads} thread(s), as the uninterrupted run did\n{run.explain()}"
    assert_same_training(uninterrupted_run, run.results_dir, run.explain())
