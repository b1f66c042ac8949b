"""Checkpoint and requeue, tested as faults: stopping a run must not change its result.

1. A process killed (SIGKILL) while it writes a checkpoint leaves the previous checkpoint whole
   and loadable with torch.load(weights_only=True).
2. Without Slurm: a run stopped by SIGUSR1 mid-training and started again ends with exactly the
   parameters and metrics of a run that was never stopped.
3. On the local Slurm, the job file submitted unchanged (quick mode, more epochs so that there is
   time to interrupt it) and compared with an uninterrupted job of the same seed:
   - requeued mid-training with `scontrol requeue` (what preemption on windfall does): Slurm
     sends SIGTERM, the job goes back to the queue, starts again and resumes;
   - sent SIGUSR1 as before its time limit (`scancel --signal=USR1 --batch`, what
     `--signal=B:USR1@300` does): the job file's trap has the Python save, then requeues itself.
   Both end with the uninterrupted job's parameters and metrics, exactly.
4. A checkpoint that is not one (a truncated file) is refused with one line and exit status 2,
   and left in place.

The interruptions wait for the log line "epoch 2/" (never for a fixed time), and each test checks
in the log that the interruption landed mid-training.
"""

from __future__ import annotations

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
from conftest import REPO

SCRIPT = REPO / "examples" / "checkpoint_requeue.py"
JOB_FILE = REPO / "slurm" / "checkpoint_requeue.sbatch"
EPOCHS = "30"  # quick mode's 10 epochs end too soon after "epoch 2/" to interrupt reliably
ONE_THREAD = {"SLURM_CPUS_PER_TASK": "1", "MPLBACKEND": "Agg"}

sys.path.insert(0, str(REPO / "examples"))
import workshop  # noqa: E402


# ------------------------------------------------------------------------------------------------
# 1. Killed while writing
# ------------------------------------------------------------------------------------------------
WRITER = """
import sys, torch
sys.path.insert(0, {examples!r})
import workshop
version = 0
while True:
    version += 1
    workshop.save_torch({{"version": version, "weights": torch.full((16_000_000,), float(version))}}, {path!r})
"""


def test_a_process_killed_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path):
    path = tmp_path / "checkpoint.pt"
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(examples=str(REPO / "examples"), path=str(path))])
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
    partial = list(tmp_path.glob(".checkpoint.pt.*.tmp"))
    saved = workshop.load_checkpoint(path)
    assert saved["version"] >= 1
    assert torch.equal(saved["weights"], torch.full((16_000_000,), float(saved["version"])))
    # The kill came during a write: the unfinished temporary file is still there, and it never
    # replaced the checkpoint.
    assert partial, "no unfinished temporary file: the kill did not land during a write"


# ------------------------------------------------------------------------------------------------
# 2. Stopped and resumed, without Slurm
# ------------------------------------------------------------------------------------------------
def run_script(out: Path, extra_environment: dict | None = None, interrupt_after: str | None = None) -> str:
    """Run the example in quick mode with EPOCHS epochs; send SIGUSR1 after the line that starts
    with `interrupt_after`. Returns its output."""
    environment = {**os.environ, **ONE_THREAD, **(extra_environment or {})}
    command = [sys.executable, str(SCRIPT), "--quick", "--epochs", EPOCHS, "--out", str(out)]
    process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        output.append(line)
        if interrupt_after and line.startswith(interrupt_after):
            process.send_signal(signal.SIGUSR1)
            interrupt_after = None
    assert process.wait(timeout=300) == 0, "".join(output)
    return "".join(output)


def assert_same_training(reference: Path, resumed: Path, explain: str = "") -> None:
    """Same parameters, bit for bit, and the same metrics, epoch by epoch."""
    expected, got = (json.loads((folder / "metrics.json").read_text()) for folder in (reference, resumed))
    for key in ("test_accuracy", "test_loss", "epochs"):
        assert got[key] == expected[key], f"{key}: {got[key]} after resuming, {expected[key]} uninterrupted\n{explain}"
    drop_start = [[{k: v for k, v in row.items() if k != "start"} for row in m["history"]] for m in (expected, got)]
    assert drop_start[1] == drop_start[0], f"the per-epoch metrics differ\n{explain}"
    expected_model, got_model = (torch.load(folder / "model.pt", weights_only=True) for folder in (reference, resumed))
    assert expected_model.keys() == got_model.keys()
    different = [name for name in expected_model if not torch.equal(expected_model[name], got_model[name])]
    assert not different, f"these parameters differ from the uninterrupted run: {different}\n{explain}"


def test_a_run_stopped_by_a_signal_and_started_again_ends_as_if_never_stopped(tmp_path):
    run_script(tmp_path / "reference")
    first = run_script(tmp_path / "resumed", interrupt_after="epoch 2/")
    stopped = re.search(r"^stopped by SIGUSR1 at epoch (\d+), batch (\d+)/", first, re.MULTILINE)
    assert stopped and int(stopped.group(1)) < int(EPOCHS), f"the signal did not stop the run mid-training:\n{first}"
    assert "result:" not in first
    second = run_script(tmp_path / "resumed", extra_environment={"SLURM_RESTART_COUNT": "1"})
    assert f"resuming from {tmp_path / 'resumed' / 'checkpoint.pt'}: epoch {stopped.group(1)}, batch {stopped.group(2)}" in second
    assert second.splitlines()[-1].startswith("result: ") and "starts=2" in second.splitlines()[-1]
    assert_same_training(tmp_path / "reference", tmp_path / "resumed", first + second)


def test_a_damaged_checkpoint_is_refused_in_one_line_and_kept(tmp_path):
    damaged = tmp_path / "checkpoint.pt"
    damaged.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
        cwd=REPO, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot read checkpoint {damaged}" in result.stderr
    assert damaged.read_bytes() == b"PK\x03\x04 not a whole checkpoint"


# ------------------------------------------------------------------------------------------------
# 3. On the local Slurm
# ------------------------------------------------------------------------------------------------
class Job:
    """The job file submitted unchanged (without --wait) from its own scratch copy of the repo,
    with `--epochs EPOCHS` passed on to the script."""

    def __init__(self, slurm_cluster, label: str):
        from slurm_fixtures import scratch_copy

        self.slurm = slurm_cluster
        self.scratch = scratch_copy(slurm_cluster.scratch_root / f"checkpoint_requeue_{label}")
        command = ["sbatch", "--parsable", *slurm_cluster.submit_args(JOB_FILE), "slurm/checkpoint_requeue.sbatch", "--epochs", EPOCHS]
        result = slurm_cluster.run(*command, cwd=self.scratch, check=True)
        self.id = int(result.stdout.strip().split(";")[0])
        self.log_path = self.scratch / f"checkpoint_requeue_{self.id}.out"
        self.results = self.scratch / "results" / f"checkpoint_requeue_{self.id}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def state(self) -> dict[str, str]:
        """The job's fields from `scontrol show job` (empty once Slurm has forgotten the job)."""
        result = self.slurm.run("scontrol", "--oneliner", "show", "job", str(self.id))
        return dict(re.findall(r"(\w+)=(\S*)", result.stdout)) if result.returncode == 0 else {}

    def explain(self) -> str:
        return f"job {self.id} in {self.scratch}: {self.state()}\n---- its log ----\n{self.log}"

    def wait_for_line(self, pattern: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.log, re.MULTILINE):
            assert time.monotonic() < deadline, f"no line matching {pattern!r} after {timeout} s\n{self.explain()}"
            assert not self.ended(), f"the job ended before a line matching {pattern!r}\n{self.explain()}"
            time.sleep(0.05)

    def ended(self) -> bool:
        state = self.state().get("JobState")
        return state is None or state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")

    def wait_until_done(self, timeout: float = 300) -> None:
        """Wait for the job to end. After a requeue Slurm holds the job until the launch
        credential of its last start has expired (AuthInfo cred_expire: 10 s on the tests'
        cluster, 120 s by default)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY") or not state:
                break
            assert time.monotonic() < deadline, f"job not done after {timeout} s\n{self.explain()}"
            time.sleep(0.2)
        assert state.get("JobState", "COMPLETED") == "COMPLETED" and state.get("ExitCode", "0:0") == "0:0", self.explain()
        assert self.log.splitlines()[-1].startswith("result: "), self.explain()


@pytest.fixture(scope="module")
def reference_job(slurm_cluster):
    """One uninterrupted job with the same seed and epochs, running while the others are interrupted."""
    return Job(slurm_cluster, "uninterrupted")


def check_resumed_mid_training(job: Job) -> None:
    log = job.log
    assert "start 2 of this job (SLURM_RESTART_COUNT=1)" in log, job.explain()
    resumed = re.search(r"^resuming from \S+: epoch (\d+), batch (\d+)$", log, re.MULTILINE)
    assert resumed and 2 < int(resumed.group(1)) <= int(EPOCHS), f"did not resume mid-training\n{job.explain()}"
    assert "starts=2" in log.splitlines()[-1], job.explain()


@pytest.mark.slurm
def test_a_job_requeued_mid_training_resumes_and_ends_as_if_never_requeued(slurm_cluster, reference_job):
    job = Job(slurm_cluster, "requeued")
    job.wait_for_line(r"^epoch 2/")
    slurm_cluster.run("scontrol", "requeue", str(job.id), check=True)
    job.wait_until_done()
    assert "DUE TO JOB REQUEUE" in job.log, job.explain()
    check_resumed_mid_training(job)
    reference_job.wait_until_done()
    assert "starts=1" in reference_job.log.splitlines()[-1], reference_job.explain()
    assert_same_training(reference_job.results, job.results, job.explain())


@pytest.mark.slurm
def test_a_job_signalled_before_its_time_limit_saves_requeues_itself_and_ends_as_if_never_stopped(slurm_cluster, reference_job):
    job = Job(slurm_cluster, "signalled")
    job.wait_for_line(r"^epoch 2/")
    slurm_cluster.run("scancel", "--signal=USR1", "--batch", str(job.id), check=True)
    job.wait_until_done()
    assert re.search(r"^stopped by SIGUSR1 at epoch \d+, batch \d+/", job.log, re.MULTILINE), job.explain()
    assert f"requeueing job {job.id}" in job.log, job.explain()
    check_resumed_mid_training(job)
    reference_job.wait_until_done()
    assert_same_training(reference_job.results, job.results, job.explain())
