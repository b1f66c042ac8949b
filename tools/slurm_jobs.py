"""Jobs on the local Slurm (tools/slurm_cluster.py): submit, wait, and read what a job left behind.

The one way the tests, the benchmark and `make results` submit job files and wait for them:

    slurm = LocalSlurm(cluster, scratch_root)             # in tests: the `slurm_cluster` fixture
    run = slurm.submit(REPO / "slurm/digits_cnn.sbatch")  # submits, waits for the end: a JobRun
    assert run.exit_code == 0, run.explain()              # run.log, run.logs, run.results_dir, ...

    job = slurm.launch(REPO / "slurm/checkpoint_requeue.sbatch", script_args=("--epochs", "30"))
    job.wait_for_line(r"^epoch 2/")                       # a Job: submitted, not waited for yet
    slurm.run("scontrol", "requeue", str(job.id))
    run = job.wait()                                      # the same JobRun as submit's

    output, jobs = slurm.launch_script(REPO / "slurm/submit_sweep.sh")  # a script that runs sbatch:
    runs = [job.wait() for job in jobs]                                 # a Job for each job it submitted
    output, runs = slurm.submit_script(REPO / "slurm/submit_sweep.sh")  # the same, waited for, once a session

Each submission runs from a scratch copy of the repository of its own (what git tracks, and new
files it does not ignore), with the job file unchanged and only `--account` (when the file has
one) and `--export=ALL,WORKSHOP_VENV=<the project's .venv>` on sbatch's command line, as a user
on Puma submits it; `quick=True` (the tests) adds WORKSHOP_QUICK=1 to the export, the benchmark
and `make results` submit full runs.

Waiting: one thread asks Slurm about every job (`scontrol show job`) twice a second and wakes
whoever waits for a job that ended (an array: once all its tasks have). The node says it has 94
CPUs, so Slurm would start every job at once; a job starts only while the cores it keeps busy
fit the `cpus` given to jobs: torch threads that share a core run many times slower. With
`shares_cores` (the tests) the caller runs on one of those cores itself, except while it waits
for a job. Submissions take their turn in order, except that one a caller is waiting for goes
first: `start()` fills idle cores with jobs that tests will look at later.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tools.job_rules import JobFile
from tools.slurm_cluster import REPO, ClusterError, SlurmCluster, missing_requirements

VENV = REPO / ".venv"
TEST_ACCOUNT = "test_group"  # any name: the local Slurm keeps no accounts
JOB_TIMEOUT_S = 300  # a quick-mode job takes seconds; this only stops a hung one
POLL_S = 0.5  # how often the waiting thread asks Slurm (ended jobs stay listed for 4 s or more)
# Slurm's states of a job that has ended for good (a requeued job goes back to PENDING instead).
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT"}
# A pending job that can never start (afterok on a job that failed) ends the wait too.
NEVER_STARTS = "DependencyNeverSatisfied"
SUBMITTED = re.compile(r"Submitted batch job (\d+)")


class JobError(AssertionError):
    """A job did not do what its caller waited for; the message says what happened."""


def default_cpus() -> int:
    """The cores jobs may keep busy at once: WORKSHOP_SLURM_CPUS, else the cores this process may use."""
    return int(os.environ.get("WORKSHOP_SLURM_CPUS") or len(os.sched_getaffinity(0)))


@dataclass
class JobRun:
    """A job that has ended (or was refused by sbatch), and what it left behind."""

    job_file: Path  # in the repository
    command: list[str]  # sbatch's command line, run in `scratch`
    job_id: int | None  # None when sbatch refused the file
    exit_code: int | None  # as `sbatch --wait` gives it: the job's (an array: its tasks' highest); None: unknown
    state: str  # Slurm's last word on it, e.g. "COMPLETED", "FAILED", "PENDING (DependencyNeverSatisfied)"
    sbatch_output: str  # what sbatch printed ("Submitted batch job N", or why it refused)
    scratch: Path  # the copy of the repository the job ran in
    logs: dict[str, str]  # log file (relative to scratch) -> its text; one per task of an array
    seconds: float  # from submission to the end
    cluster_logs: str  # the daemons' log tails, taken when the job ended

    @property
    def job(self) -> JobFile:
        return JobFile.read(self.job_file, REPO)

    @property
    def log(self) -> str:
        """The log of a job that is not an array (it has exactly one)."""
        if len(self.logs) != 1:
            raise JobError(f"expected one log, found {sorted(self.logs)}\n{self.explain()}")
        return next(iter(self.logs.values()))

    @property
    def results_dir(self) -> Path:
        """Where the job's example writes: results/<job name>_<job id> (array: see results_dirs)."""
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
        """Everything needed to see why a job failed: command, state, output, log tails."""
        parts = [
            f"job file: {self.job_file.relative_to(REPO)}",
            f"command (in {self.scratch}): {' '.join(self.command)}",
            f"job {self.job_id}: {self.state}, exit code {self.exit_code}, {self.seconds:.1f} s after submission",
            f"sbatch said: {self.sbatch_output.strip() or '(nothing)'}",
        ]
        if not self.logs:
            parts.append("no log file was found")
        for name, text in self.logs.items():
            parts.append(f"---- last lines of the job's log {name} ----\n" + "\n".join(text.splitlines()[-lines:]))
        parts.append(self.cluster_logs)
        return "\n".join(parts)


class Job:
    """A job that was submitted (an array: all its tasks) and is not waited for yet."""

    def __init__(self, slurm: LocalSlurm, job_file: Path, scratch: Path, command: list[str], submitted: subprocess.CompletedProcess):
        self.slurm, self.job_file, self.scratch, self.command = slurm, job_file, scratch, command
        self.sbatch_output, self.sbatch_exit_code = submitted.stdout + submitted.stderr, submitted.returncode
        found = SUBMITTED.search(submitted.stdout)
        self.id = int(found.group(1)) if found and submitted.returncode == 0 else None  # None: sbatch refused it
        self.submitted = time.monotonic()
        self.records: list[dict[str, str]] = []  # Slurm's latest fields for the job (one per array task)
        self.ended_at: float | None = None if self.id is not None else self.submitted
        self.note = ""  # what went wrong with waiting, if anything
        self.cpus = 0  # cores held for it until it ends

    @property
    def job(self) -> JobFile:
        return JobFile.read(self.scratch / self.job_file.relative_to(REPO), REPO)

    def state(self) -> dict[str, str]:
        """Slurm's fields for the job as last seen (`scontrol show job`; an array: its first task)."""
        return dict(self.records[0]) if self.records else {}

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def logs(self) -> dict[str, str]:
        return find_logs(self.job, self.id, self.scratch) if self.id is not None else {}

    @property
    def log(self) -> str:
        """The log so far ("" before the job has written one; an array: all tasks' logs)."""
        return "".join(self.logs().values())

    def explain(self) -> str:
        return f"job {self.id} in {self.scratch}: {self.state()}\n---- its log ----\n{self.log}"

    def wait_for_line(self, pattern: str, timeout: float = 240) -> re.Match:
        """Wait until a line of the log matches `pattern` (a regular expression, multi-line)."""
        deadline = time.monotonic() + timeout
        with self.slurm.lending_a_core():
            while not (found := re.search(pattern, self.log, re.MULTILINE)):
                if self.ended:
                    raise JobError(f"the job ended before a line matching {pattern!r}\n{self.explain()}")
                if time.monotonic() > deadline:
                    raise JobError(f"no line matching {pattern!r} after {timeout} s\n{self.explain()}")
                time.sleep(0.05)
        return found

    def wait(self, timeout: float = JOB_TIMEOUT_S) -> JobRun:
        """Wait for the job to end (cancelled after `timeout` seconds) and say what it left."""
        with self.slurm.lending_a_core(), self.slurm.lock:
            if not self.slurm.lock.wait_for(lambda: self.ended, timeout=timeout):
                self.note = f"gave up waiting after {timeout} s and cancelled the job"
        if self.note.startswith("gave up"):
            self.slurm.run("scancel", str(self.id), timeout=30)
            with self.slurm.lock:
                self.slurm.lock.wait_for(lambda: self.ended, timeout=30)
        return self.result()

    def result(self) -> JobRun:
        states = [record.get("JobState", "?") for record in self.records]
        reasons = {record.get("Reason") for record in self.records}
        if self.id is None:
            exit_code, state = self.sbatch_exit_code, "refused by sbatch"
        elif not self.records:
            exit_code, state = None, "forgotten by Slurm before the tests saw it end"
        else:
            exit_code = max(_exit_code(record.get("ExitCode", "0:0")) for record in self.records)
            state = ", ".join(sorted(set(states))) + (f" ({NEVER_STARTS})" if NEVER_STARTS in reasons else "")
            if exit_code == 0 and set(states) != {"COMPLETED"}:
                exit_code = 1  # cancelled, or never started: not a success
        if self.note:
            state += f"; {self.note}"
        seconds = (self.ended_at or time.monotonic()) - self.submitted
        return JobRun(
            self.job_file, self.command, self.id, exit_code, state, self.sbatch_output, self.scratch, self.logs(), seconds,
            self.slurm.cluster.log_tail(),
        )  # fmt: skip


def _exit_code(field: str) -> int:
    """`ExitCode=status:signal` -> the status, or 128 + the signal that killed the job."""
    status, _, signal = field.partition(":")
    return int(status) or (128 + int(signal or 0) if int(signal or 0) else 0)


class LocalSlurm:
    """A running cluster, and submitting job files to it (see the module's docstring)."""

    def __init__(
        self,
        cluster: SlurmCluster,
        scratch_root: Path,
        *,
        quick: bool = True,
        account: str = TEST_ACCOUNT,
        cpus: int | None = None,
        shares_cores: bool = False,
    ):
        self.cluster, self.scratch_root, self.quick, self.account = cluster, Path(scratch_root), quick, account
        self.cpus = cpus or default_cpus()  # the most cores the jobs may keep busy at once
        self.shares_cores = shares_cores
        self.lock = threading.Condition()
        self._cpus_free = self.cpus - (1 if shares_cores else 0)
        self._waiting = threading.local()  # how deep this thread is in calls that only wait
        self._turns: list[object] = []  # submissions waiting for cores, in the order they go
        self._tickets: dict[tuple, object] = {}  # submit()'s arguments -> its place in _turns
        self._urgent: set[tuple] = set()  # submit()'s arguments that a caller waits for
        self._jobs: list[Job] = []  # every job submitted, for the waiting thread
        self._groups: list[tuple[list[Job], int]] = []  # a script's jobs, and the cores they hold together
        self._once: dict[tuple, object] = {}  # submit()'s Jobs and submit_script()'s, once per arguments
        self._closed = False
        self._poller = threading.Thread(target=self._poll, name="slurm-poller", daemon=True)
        self._poller.start()

    @classmethod
    @contextlib.contextmanager
    def started(cls, **options):
        """A throwaway cluster for the benchmark or `make results`, and its scratch folder; both
        are gone afterwards. `options`: see LocalSlurm (e.g. quick=False, account="bench")."""
        problem = missing_requirements()
        if problem:
            raise ClusterError(f"the local Slurm cannot run here: {problem}")
        cluster = SlurmCluster.start()
        scratch = Path(tempfile.mkdtemp(prefix="slurm-jobs-"))
        slurm = cls(cluster, scratch, **options)
        try:
            yield slurm
        finally:
            slurm.shutdown()
            cluster.stop()
            shutil.rmtree(scratch, ignore_errors=True)

    # ---------------------------------------------------------------- Slurm's own commands
    def run(self, *command: str, cwd: Path | None = None, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Slurm command (sbatch, squeue, scontrol, scancel, ...) against this cluster."""
        return subprocess.run(command, cwd=cwd, env=self.cluster.environment(), capture_output=True, text=True, check=check, timeout=timeout)

    def submit_args(self, job_file: Path, export: dict[str, str] | None = None) -> list[str]:
        """What is added to sbatch's command line: --account (if the file has one) and --export."""
        account = [f"--account={self.account}"] if JobFile.read(job_file).get("--account") else []
        variables = {"WORKSHOP_VENV": str(VENV), **({"WORKSHOP_QUICK": "1"} if self.quick else {}), **(export or {})}
        return [*account, "--export=" + ",".join(["ALL", *(f"{name}={value}" for name, value in variables.items())])]

    def test_only(self, job_file: Path, *overrides: str) -> subprocess.CompletedProcess:
        """`sbatch --test-only`: would Slurm accept the file, and where would it run?

        `overrides`: options for sbatch's command line, which win over the file's #SBATCH lines
        (e.g. `--nodes=1` to shrink a multi-node job to the test cluster's one node)."""
        job_file = Path(job_file).resolve()
        return self.run("sbatch", "--test-only", *self.submit_args(job_file), *overrides, str(job_file.relative_to(REPO)), cwd=REPO)

    # ---------------------------------------------------------------- submitting
    def launch(
        self,
        job_file: Path,
        export: dict[str, str] | None = None,
        script_args: tuple[str, ...] = (),
        options: tuple[str, ...] = (),
        cpus: int | None = None,
        folder: Path | None = None,
    ) -> Job:
        """Submit the job file from a fresh scratch copy once cores are free for it, and return
        without waiting for it to end. `export`: more variables for --export (e.g. a data path);
        `script_args`: arguments for the job script, after its name; `options`: more for sbatch
        (e.g. `--hold`); `cpus`: the cores to keep for it until it ends (default: what it asks
        for; at most the `cpus` jobs get; 0 for a job that will not run); `folder`: submit from
        this folder (a reader's unpacked download, say) instead of a scratch copy: the job file
        at the same relative path there is the one that runs. It goes before the jobs that
        `start()` queued: its caller waits for it."""
        with self.lending_a_core():
            return self._launch(Path(job_file), export, tuple(script_args), tuple(options), True, cpus=cpus, folder=folder)

    def _launch(self, job_file: Path, export, script_args: tuple, options: tuple, first: bool, key=None, cpus=None, folder=None) -> Job:
        job_file = job_file.resolve()
        relative = str(job_file.relative_to(REPO))
        cpus = self.cpus_wanted(JobFile.read(job_file)) if cpus is None else min(cpus, self.cpus)
        with self._turn(cpus, first, key):
            scratch = folder or scratch_copy(self.scratch_root / _unique_name(self.scratch_root, job_file.stem))
            command = ["sbatch", *self.submit_args(job_file, export), *options, relative, *script_args]
            job = Job(self, job_file, scratch, command, self.run(*command, cwd=scratch))
            self._watch(job, cpus)
        return job

    def submit(self, job_file: Path, export: dict[str, str] | None = None, script_args: tuple[str, ...] = ()) -> JobRun:
        """Submit the job file and wait for it to end: once per session for the same arguments
        (later calls, from any test, get the same JobRun)."""
        with self.lending_a_core():
            return self._submitted(Path(job_file), export, tuple(script_args), first=True).wait()

    def submit_script(self, script: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[JobRun]]:
        """launch_script(), then wait for every job the script submitted: once per session for
        the same arguments (later calls, from any test, get the same output and JobRuns)."""
        with self.lending_a_core():
            output, jobs = self._script_submitted(Path(script), tuple(args), first=True)
            return output, [job.wait() for job in jobs]

    def start(self, job_files: list[Path]) -> None:
        """Submit these job files (or run these submitting scripts, slurm/*.sh) in the background,
        each once per session and after any job a caller waits for: a later `submit` of one of
        them (`submit_script`) only waits for it to end."""
        for job_file in map(Path, job_files):
            threading.Thread(target=self._in_background, args=(job_file,), daemon=True).start()

    def _in_background(self, job_file: Path) -> None:
        try:
            if job_file.suffix == ".sh":
                self._script_submitted(job_file, (), first=False)
            else:
                self._submitted(job_file, None, (), first=False)
        except JobError:
            if not self._closed:  # else: the session ended before its turn, and nobody waits for it
                raise

    def submit_many(self, job_files: list[Path]) -> list[JobRun]:
        """Submit several job files at once (each once per session) and wait for all of them."""
        self.start(job_files)
        return [self.submit(job_file) for job_file in job_files]

    def launch_script(self, script: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[Job]]:
        """Run a script that submits jobs itself (e.g. slurm/submit_sweep.sh) from a fresh
        scratch copy, with submit_args() (of the first job file it names, else of a file with
        --account) as its arguments, then `args`. Returns its output and a Job for each job it
        submitted (found by their working folder, the scratch copy), by job id. Its jobs are
        not known before it runs: it holds all the cores until they have ended."""
        with self.lending_a_core():
            return self._launch_script(Path(script), tuple(args), first=True)

    def _launch_script(self, script: Path, args: tuple, first: bool, key=None) -> tuple[subprocess.CompletedProcess, list[Job]]:
        script = script.resolve()
        with self._turn(self.cpus, first, key):
            scratch = scratch_copy(self.scratch_root / _unique_name(self.scratch_root, script.stem))
            submitted = job_files_submitted_by(script)
            command = [str(script.relative_to(REPO)), *self.submit_args(submitted[0] if submitted else script), *args]
            output = self.run(*command, cwd=scratch, timeout=120)
            jobs = []
            for record in self._records():
                if record.get("WorkDir") == str(scratch) and record.get("ArrayJobId", record["JobId"]) == record["JobId"]:
                    job_file = REPO / Path(record["Command"]).relative_to(scratch)
                    said = subprocess.CompletedProcess(command, 0, f"Submitted batch job {record['JobId']}\n", "")
                    jobs.append(Job(self, job_file, scratch, command, said))
            jobs.sort(key=lambda job: job.id)
            for job in jobs:
                self._watch(job, 0)
            if jobs:  # the cores go back once all of them have ended
                with self.lock:
                    self._cpus_free -= self.cpus
                    self._groups.append((jobs, self.cpus))
        return output, jobs

    def cpus_wanted(self, job: JobFile) -> int:
        """How many of this machine's cores the job will keep busy: what it asks for, at most all."""
        cpus = int(job.value("--cpus-per-task") or 1)
        nodes = int((job.value("--nodes") or "1").split("-")[0])
        tasks = int(job.value("--ntasks") or nodes * int(job.value("--ntasks-per-node") or 1))
        array_tasks = len(job.array_task_ids) if job.is_array else 1  # an array's tasks run side by side
        return max(1, min(self.cpus, cpus * tasks * array_tasks))

    def finished(self) -> list[JobRun]:
        """submit()'s jobs that have ended, in the order they were submitted."""
        with self.lock:
            made = [made for made in self._once.values() if made is not None]
        jobs = [job for made in made for job in ([made] if isinstance(made, Job) else made[1])]
        return [job.result() for job in jobs if job.ended]

    def shutdown(self) -> None:
        """Submit nothing more, and cancel every job that has not ended."""
        with self.lock:
            self._closed = True
            self.lock.notify_all()
            live = [str(job.id) for job in self._jobs if not job.ended and job.id is not None]
        if live:
            self.run("scancel", *live, timeout=30)

    @contextlib.contextmanager
    def lending_a_core(self):
        """While a caller that shares the cores only waits for a job, its core is free for jobs."""
        depth = getattr(self._waiting, "depth", 0)
        lends = self.shares_cores and depth == 0
        self._waiting.depth = depth + 1
        if lends:
            with self.lock:
                self._cpus_free += 1
                self.lock.notify_all()
        try:
            yield
        finally:
            self._waiting.depth = depth
            if lends:
                with self.lock:
                    self._cpus_free -= 1

    # ---------------------------------------------------------------- inside
    def _submitted(self, job_file: Path, export: dict[str, str] | None, script_args: tuple[str, ...], first: bool) -> Job:
        """submit()'s job for these arguments: launched by the first caller, waited for by all."""
        key = (job_file.resolve(), tuple(sorted((export or {}).items())), script_args)
        return self._once_per_session(key, lambda: self._launch(job_file, export, script_args, (), first, key), first)

    def _script_submitted(self, script: Path, args: tuple[str, ...], first: bool) -> tuple[subprocess.CompletedProcess, list[Job]]:
        key = (script.resolve(), args)
        return self._once_per_session(key, lambda: self._launch_script(script, args, first, key), first)

    def _once_per_session(self, key: tuple, make, first: bool):
        """What `make()` returns for this key, made by the first caller and shared by all. A
        caller that waits (`first`) for one that start() queued moves it to the front."""
        with self.lock:
            if key in self._once:
                if first and self._once[key] is None:  # queued by start(): a caller waits for it now
                    self._urgent.add(key)
                    if key in self._tickets:
                        self._turns.remove(self._tickets[key])
                        self._turns.insert(0, self._tickets[key])
                    self.lock.notify_all()
                self.lock.wait_for(lambda: self._once[key] is not None or self._closed)
                if self._once[key] is None:
                    raise JobError(f"the session ended before {key[0].name} was submitted")
                return self._once[key]
            self._once[key] = None
        try:
            made = make()
        except BaseException:
            with self.lock:
                del self._once[key]
                self.lock.notify_all()
            raise
        with self.lock:
            self._once[key] = made
            self.lock.notify_all()
        return made

    @contextlib.contextmanager
    def _turn(self, cpus: int, first: bool, key: tuple | None = None):
        """Wait until it is this submission's turn and `cpus` cores are free; hold them."""
        ticket = object()
        with self.lock:
            self._turns.insert(0 if first or key in self._urgent else len(self._turns), ticket)
            if key is not None:
                self._tickets[key] = ticket
            self.lock.wait_for(lambda: self._closed or (self._turns[0] is ticket and self._cpus_free >= cpus))
            self._turns.remove(ticket)
            self._tickets.pop(key, None)
            self.lock.notify_all()
            if self._closed:
                raise JobError("the session ended before the job was submitted")
            self._cpus_free -= cpus
        try:
            yield
        finally:
            with self.lock:
                self._cpus_free += cpus  # the job, if any, holds them again from now (_watch)
                self.lock.notify_all()

    def _watch(self, job: Job, cpus: int) -> None:
        with self.lock:
            if job.id is not None:
                job.cpus = cpus
                self._cpus_free -= cpus
                self._jobs.append(job)
            self.lock.notify_all()

    def _records(self) -> list[dict[str, str]]:
        """Every job Slurm knows now, one dict of fields per job (and per array task)."""
        listed = self.run("scontrol", "--oneliner", "show", "job", timeout=30)
        return [dict(re.findall(r"([\w:/]+)=(\S*)", line)) for line in listed.stdout.splitlines() if line.startswith("JobId=")]

    def _poll(self) -> None:
        while True:
            with self.lock:
                self.lock.wait_for(lambda: self._closed or any(not job.ended for job in self._jobs))
                if self._closed:
                    return
            try:
                records = self._records()
            except (subprocess.SubprocessError, OSError):
                records = None  # the controller is busy or gone: ask again
            if records is not None:
                self._update(records)
            time.sleep(POLL_S)

    def _update(self, records: list[dict[str, str]]) -> None:
        now = time.monotonic()
        with self.lock:
            for job in self._jobs:
                if job.ended:
                    continue
                mine = [r for r in records if str(job.id) in (r.get("JobId"), r.get("ArrayJobId"))]
                if mine:
                    job.records = mine
                ended = bool(mine) and all(r.get("JobState") in ENDED or r.get("Reason") == NEVER_STARTS for r in mine)
                forgotten = not mine and (job.records or now - job.submitted > 30)
                if ended or forgotten:
                    job.ended_at = now
                    self._cpus_free += job.cpus
                    job.cpus = 0
                    if any(r.get("Reason") == NEVER_STARTS for r in mine):
                        self.run("scancel", str(job.id), timeout=30)
            for group in [group for group in self._groups if all(job.ended for job in group[0])]:
                self._groups.remove(group)
                self._cpus_free += group[1]
            self.lock.notify_all()


def job_files_submitted_by(script: Path) -> list[Path]:
    """The job files in slurm/ that a submitting script names, in order."""
    return [REPO / name for name in dict.fromkeys(re.findall(r"slurm/\w+\.sbatch", Path(script).read_text()))]


def script_submitting(job_file: Path) -> Path | None:
    """The script in slurm/ that submits this job file (e.g. slurm/submit_sweep.sh), if any."""
    return next((script for script in sorted((REPO / "slurm").glob("*.sh")) if Path(job_file).resolve() in job_files_submitted_by(script)), None)


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
