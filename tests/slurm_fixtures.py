"""The `slurm_cluster` fixture: a real local Slurm for the whole test session.

    def test_something(slurm_cluster):
        run = slurm_cluster.submit(REPO / "slurm" / "digits_cnn.sbatch")
        assert run.exit_code == 0, run.explain()
        assert run.last_lines()[-1].startswith("result:")
        metrics = run.results_dir / "metrics.json"

`submit` hands the job file, unchanged, to `sbatch --wait` from a fresh scratch copy of the
repository, with only `--account` (when the file has one) and
`--export=ALL,WORKSHOP_QUICK=1,WORKSHOP_VENV=<the project's .venv>` on the command line, as a
user on Puma would submit it (quick mode, for CI). Each job file is submitted once per session:
later calls, from any test, get the same JobRun. `submit_many` submits several at once, each
`sbatch --wait` in its own thread, so their waits overlap.

When a test that uses the cluster fails, its report ends with the tail of the slurmctld, slurmd
and munged logs. The cluster itself is tests/slurm_cluster.py; it starts in a second or two.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, VENV, skip_or_fail
from job_rules import JobFile
from slurm_cluster import ClusterError, SlurmCluster, missing_requirements

TEST_ACCOUNT = "test_group"  # any name: the local Slurm keeps no accounts
QUICK_EXPORT = f"ALL,WORKSHOP_QUICK=1,WORKSHOP_VENV={VENV}"
JOB_TIMEOUT_S = 300  # a quick-mode job takes seconds; this only stops a hung test
# Jobs run side by side (each `sbatch --wait` in a thread of its own) as long as together they
# ask for no more than this many CPUs: the cores this test run may use. WORKSHOP_SLURM_CPUS
# overrides it (1: one job after the other).
CPU_BUDGET = int(os.environ.get("WORKSHOP_SLURM_CPUS") or len(os.sched_getaffinity(0)))


@dataclass
class JobRun:
    """One job file submitted with `sbatch --wait`, and what it left behind."""

    job_file: Path  # in the repository
    command: list[str]
    job_id: int | None  # None when sbatch rejected the file
    exit_code: int  # sbatch --wait's: the job's exit code (the highest of an array's tasks)
    sbatch_output: str  # what sbatch printed ("Submitted batch job N", or why it refused)
    scratch: Path  # the copy of the repository the job ran in
    logs: dict[str, str]  # log file (relative to scratch) -> its text; one per task of an array
    seconds: float  # from submission to sbatch's return
    cluster_logs: str  # the daemons' log tails, taken when the job ended

    @property
    def job(self) -> JobFile:
        return JobFile.read(self.job_file, REPO)

    @property
    def log(self) -> str:
        """The log of a job that is not an array (it has exactly one)."""
        if len(self.logs) != 1:
            raise AssertionError(f"expected one log, found {sorted(self.logs)}\n{self.explain()}")
        return next(iter(self.logs.values()))

    @property
    def results_dir(self) -> Path:
        """Where the job's example writes: results/<job name>_<job id> (array: one per task)."""
        return self.scratch / "results" / f"{self.job.job_name}_{self.job_id}"

    def results_dirs(self) -> list[Path]:
        """results/<name>_<id>, or for an array results/<name>_<array id>_<task> for each task."""
        if not self.job.is_array:
            return [self.results_dir]
        return [self.scratch / "results" / f"{self.job.job_name}_{self.job_id}_{task}" for task in self.array_tasks()]

    def array_tasks(self) -> list[int]:
        """The task numbers of an array job, from its logs' names (%a is the last number)."""
        return sorted(int(re.findall(r"\d+", Path(name).stem)[-1]) for name in self.logs)

    def explain(self, lines: int = 40) -> str:
        """Everything needed to see why a job failed: command, exit code, output, log tails."""
        parts = [
            f"job file: {self.job_file.relative_to(REPO)}",
            f"command (in {self.scratch}): {' '.join(self.command)}",
            f"sbatch's exit code: {self.exit_code}; it took {self.seconds:.1f} s",
            f"sbatch said: {self.sbatch_output.strip() or '(nothing)'}",
        ]
        if not self.logs:
            parts.append("no log file was found")
        for name, text in self.logs.items():
            parts.append(f"---- last lines of the job's log {name} ----\n" + "\n".join(text.splitlines()[-lines:]))
        parts.append(self.cluster_logs)
        return "\n".join(parts)


class LocalSlurm:
    """The session's cluster, with job submission that caches its results."""

    def __init__(self, cluster: SlurmCluster, scratch_root: Path, cpu_budget: int = CPU_BUDGET):
        self.cluster = cluster
        self.scratch_root = scratch_root
        self.cpu_budget = cpu_budget
        self._cpus_free = cpu_budget
        self._queue: list[object] = []  # submissions waiting for cores, oldest first
        self._closed = False
        self._runs: dict[tuple, Future] = {}
        self._lock = threading.Condition()
        self._waiting: dict[subprocess.Popen, int | None] = {}  # running `sbatch --wait`s -> job id
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="sbatch")

    def run(self, *command: str, cwd: Path | None = None, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Slurm command (sbatch, squeue, scancel, ...) against the cluster."""
        return subprocess.run(command, cwd=cwd, env=self.cluster.environment(), capture_output=True, text=True, check=check, timeout=timeout)

    def submit_args(self, job_file: Path, export: dict[str, str] | None = None) -> list[str]:
        """What the tests add to sbatch's command line: --account (if the file has one) and --export."""
        account = [f"--account={TEST_ACCOUNT}"] if JobFile.read(job_file).get("--account") else []
        extra = "".join(f",{name}={value}" for name, value in (export or {}).items())
        return [*account, f"--export={QUICK_EXPORT}{extra}"]

    def test_only(self, job_file: Path, *overrides: str) -> subprocess.CompletedProcess:
        """`sbatch --test-only`: would Slurm accept the file, and where would it run?

        `overrides`: options for sbatch's command line, which win over the file's #SBATCH lines
        (e.g. `--nodes=1` to shrink a multi-node job to the test cluster's one node)."""
        job_file = Path(job_file).resolve()
        return self.run("sbatch", "--test-only", *self.submit_args(job_file), *overrides, str(job_file.relative_to(REPO)), cwd=REPO)

    def start(self, job_files: list[Path]) -> None:
        """Submit these job files now (each once per session) without waiting: a later
        `submit` of one of them waits only for that one, while the others run on."""
        for job_file in job_files:
            self._future(Path(job_file))

    def submit(self, job_file: Path, export: dict[str, str] | None = None, script_args: tuple[str, ...] = ()) -> JobRun:
        """Submit the job file and wait for it to end; once per session for the same arguments.

        `export`: more variables for --export (e.g. a data path for a test's small data set);
        `script_args`: arguments for the job script itself, after its name on sbatch's line."""
        return self._future(Path(job_file), export, tuple(script_args)).result()

    def submit_many(self, job_files: list[Path]) -> list[JobRun]:
        """Submit several job files at once (each once per session) and wait for all of them."""
        futures = [self._future(Path(job_file)) for job_file in job_files]
        return [future.result() for future in futures]

    def _future(self, job_file: Path, export: dict[str, str] | None = None, script_args: tuple[str, ...] = ()) -> Future:
        key = (job_file.resolve(), tuple(sorted((export or {}).items())), script_args)
        with self._lock:
            if key not in self._runs:
                ticket = object()  # its place in the queue for this machine's cores
                self._queue.append(ticket)
                self._runs[key] = self._pool.submit(self._submit_and_wait, *key, ticket)
            return self._runs[key]

    def cpus_wanted(self, job: JobFile) -> int:
        """How many of this machine's cores the job will keep busy: what it asks for, at most all."""
        cpus = int(job.value("--cpus-per-task") or 1)
        nodes = int((job.value("--nodes") or "1").split("-")[0])
        tasks = int(job.value("--ntasks") or nodes * int(job.value("--ntasks-per-node") or 1))
        array_tasks = len(job.array_task_ids) if job.is_array else 1  # an array's tasks run side by side
        return max(1, min(self.cpu_budget, cpus * tasks * array_tasks))

    def _submit_and_wait(self, job_file: Path, export: tuple, script_args: tuple[str, ...], ticket: object) -> JobRun:
        # Jobs start only while this machine has cores to spare: a torch job whose threads share
        # cores with another's runs many times slower (see slurm_cluster.py's docstring). First
        # come, first served: the tests wait for the jobs in the order they were submitted.
        cpus = self.cpus_wanted(JobFile.read(job_file))
        with self._lock:
            self._lock.wait_for(lambda: self._closed or (self._queue[0] is ticket and self._cpus_free >= cpus))
            self._queue.remove(ticket)
            self._lock.notify_all()
            if self._closed:
                raise RuntimeError(f"the test run ended before {job_file.name} was submitted")
            self._cpus_free -= cpus
        try:
            return self._sbatch_wait(job_file, dict(export), script_args)
        finally:
            with self._lock:
                self._cpus_free += cpus
                self._lock.notify_all()

    def _sbatch_wait(self, job_file: Path, export: dict[str, str], script_args: tuple[str, ...]) -> JobRun:
        scratch = scratch_copy(self.scratch_root / _unique_name(self.scratch_root, job_file.stem))
        relative = str(job_file.relative_to(REPO))
        command = ["sbatch", "--wait", *self.submit_args(job_file, export), relative, *script_args]
        started = time.monotonic()
        lines = []
        with subprocess.Popen(
            command, cwd=scratch, env=self.cluster.environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            with self._lock:
                self._waiting[process] = None
            try:
                # sbatch prints "Submitted batch job N" at once, then waits for the job to end
                first = process.stdout.readline()
                lines.append(first)
                if match := re.search(r"Submitted batch job (\d+)", first):
                    with self._lock:
                        self._waiting[process] = int(match.group(1))
                lines.append(process.communicate(timeout=JOB_TIMEOUT_S)[0])
            except subprocess.TimeoutExpired:
                process.kill()
                lines.append(process.communicate()[0] + f"\n(the test gave up waiting after {JOB_TIMEOUT_S} s and cancelled the job)")
                self._cancel(process)
            finally:
                with self._lock:
                    self._waiting.pop(process, None)
        output = "".join(lines)
        match = re.search(r"Submitted batch job (\d+)", output)
        job_id = int(match.group(1)) if match else None
        logs = find_logs(JobFile.read(scratch / relative), job_id, scratch) if job_id else {}
        seconds = time.monotonic() - started
        return JobRun(job_file, command, job_id, process.returncode, output, scratch, logs, seconds, self.cluster.log_tail())

    def _cancel(self, process: subprocess.Popen) -> None:
        job_id = self._waiting.get(process)
        if job_id is not None:
            self.run("scancel", str(job_id), timeout=30)

    def finished(self) -> list[tuple[Path, Future]]:
        """The submissions that have ended, in the order they were made."""
        return [(key[0], future) for key, future in self._runs.items() if future.done() and not future.cancelled() and not future.exception()]

    def shutdown(self) -> None:
        """Submit nothing more, and stop the `sbatch --wait` of jobs nobody waited for."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            for process in self._waiting:
                process.terminate()


def _unique_name(folder: Path, stem: str) -> str:
    """`stem`, or stem-2, stem-3, ... if a folder of that name exists (a file submitted twice)."""
    name, number = stem, 1
    while (folder / name).exists():
        number += 1
        name = f"{stem}-{number}"
    return name


def scratch_copy(destination: Path) -> Path:
    """A copy of the repository as git sees it (tracked files, and new files git does not
    ignore): no .venv, no results of earlier runs, nothing of the working copy changed."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def find_logs(job: JobFile, job_id: int, scratch: Path) -> dict[str, str]:
    """The job's log files, found from its --output pattern (default: sbatch's slurm-%j.out)."""
    default = "slurm-%A_%a.out" if job.is_array else "slurm-%j.out"
    pattern = job.value("--output") or default
    values = {"%x": job.job_name, "%A": str(job_id), "%j": "*" if job.is_array else str(job_id), "%a": "*", "%%": "%"}
    glob = re.sub(r"%[%xAja]", lambda m: values[m.group(0)], pattern)
    found = sorted(scratch.glob(glob), key=lambda p: [int(n) if n.isdigit() else n for n in re.split(r"(\d+)", p.name)])
    return {str(path.relative_to(scratch)): path.read_text(errors="replace") for path in found}


# ------------------------------------------------------------------------------------------------
# The fixture, and the daemons' logs on failure
# ------------------------------------------------------------------------------------------------
_session_cluster: list[LocalSlurm] = []
_timings: dict[str, float] = {}  # for the summary at the end of the run: what the Slurm tests cost


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running single-node Slurm with Puma's partitions; stopped at the end of the session."""
    problem = missing_requirements()
    if problem:
        skip_or_fail(f"no local Slurm: {problem}")
    started = time.monotonic()
    try:
        cluster = SlurmCluster.start()
    except ClusterError as error:
        pytest.fail(str(error), pytrace=False)
    _timings["start the cluster"] = time.monotonic() - started
    local = LocalSlurm(cluster, tmp_path_factory.mktemp("slurm-jobs"))
    _session_cluster.append(local)
    try:
        yield local
    finally:
        local.shutdown()
        started = time.monotonic()
        cluster.stop()
        _timings["stop the cluster"] = time.monotonic() - started
        _timings.update({f"job {path.relative_to(REPO)}": future.result().seconds for path, future in local.finished()})
        _session_cluster.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _session_cluster and "slurm_cluster" in getattr(item, "fixturenames", ()):
        report.sections.append(("local Slurm: the daemons' logs", _session_cluster[0].cluster.log_tail()))


def pytest_terminal_summary(terminalreporter):
    if _timings:
        terminalreporter.section("local Slurm: seconds taken (a job: from sbatch to the end of sbatch --wait)")
        for what, seconds in _timings.items():
            terminalreporter.write_line(f"{seconds:7.1f}  {what}")
