"""Puma's rules for job files, as checks a person can read.

Each rule is a small function that looks at one job file and returns its problems; each
problem names the file, the line and the fix, on one line:

    slurm/x.sbatch:7: [time] --time=12-00:00:00 is longer than Puma's limit of 10 days. Fix: ...

`check(path)` runs every rule; `RULES` maps each rule's name to its function. For each rule a
deliberately wrong job file, tests/bad_job_files/<rule>.sbatch, proves that it fires (and that
it is the only rule that fires there). Where the rules come from: Puma's documentation, as
summarised in the workshop's notes (running_jobs/batch_jobs/batch_directives,
running_jobs/cpus_and_memory, running_jobs/job_limits on hpcdocs.hpc.arizona.edu).

A job file may also say, in a comment, that it cannot run on the tests' one-node Slurm:

    # test: not-runnable-here: needs two nodes

Such a file still gets every other check; see `JobFile.not_runnable_reason`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

CPU_PARTITIONS = ("standard", "windfall", "high_priority")
GPU_PARTITIONS = ("gpu_standard", "gpu_windfall", "gpu_high_priority")
PARTITIONS = CPU_PARTITIONS + GPU_PARTITIONS
WINDFALL = ("windfall", "gpu_windfall")
HIGH_PRIORITY = ("high_priority", "gpu_high_priority")
MAX_DAYS = 10

# sbatch's one-letter options and their long names (`man sbatch`)
LONG_NAMES = {
    "-A": "--account", "-a": "--array", "-b": "--begin", "-D": "--chdir", "-M": "--clusters",
    "-C": "--constraint", "-S": "--core-spec", "-c": "--cpus-per-task", "-d": "--dependency",
    "-e": "--error", "-x": "--exclude", "-B": "--extra-node-info", "-G": "--gpus", "-H": "--hold",
    "-i": "--input", "-J": "--job-name", "-L": "--licenses", "-k": "--no-kill", "-F": "--nodefile",
    "-w": "--nodelist", "-N": "--nodes", "-n": "--ntasks", "-o": "--output", "-O": "--overcommit",
    "-s": "--oversubscribe", "-p": "--partition", "-q": "--qos", "-Q": "--quiet", "-t": "--time",
    "-v": "--verbose", "-W": "--wait",
}  # fmt: skip

NOT_RUNNABLE = re.compile(r"^#\s*test:\s*not-runnable-here:\s*(.*?)\s*$")
# "GPU hours" as something a job spends; "no (separate) GPU hours" says the opposite and passes
GPU_HOURS = re.compile(r"\bGPU[- ]hours?\b", re.IGNORECASE)
DENIED_GPU_HOURS = re.compile(r"\bno\b[^.;:]*\bGPU[- ]hours?\b", re.IGNORECASE)
ACTIVATE = re.compile(r"^(source|\.)\s+\S*bin/activate\b")
MODULE_LOAD = re.compile(r"^module\s+load\s")


# ------------------------------------------------------------------------------------------------
# A job file, read the way sbatch reads it
# ------------------------------------------------------------------------------------------------
@dataclass
class Directive:
    """One option of an #SBATCH line: `--time=01:00:00` has name "--time", value "01:00:00"."""

    line: int  # 1-based
    written: str  # the option as written, e.g. "-t" or "--time"
    value: str | None

    @property
    def name(self) -> str:
        """The long name, also for an option written short ("-t" -> "--time")."""
        return LONG_NAMES.get(self.written, self.written)

    def __str__(self) -> str:
        if self.value is None:
            return self.written
        return f"{self.written}={self.value}" if self.written.startswith("--") else f"{self.written} {self.value}"


@dataclass
class JobFile:
    path: Path
    label: str  # how messages name the file, e.g. "slurm/hello_job.sbatch"
    directives: list[Directive] = field(default_factory=list)  # the #SBATCH options sbatch reads
    ignored: list[Directive] = field(default_factory=list)  # #SBATCH lines after the first command
    commands: list[tuple[int, str]] = field(default_factory=list)  # (line, text) of each command line
    comments: list[tuple[int, str]] = field(default_factory=list)  # (line, text) of each comment, `#` dropped
    not_runnable_reason: str | None = None

    @classmethod
    def read(cls, path: Path, root: Path | None = None) -> JobFile:
        path = Path(path)
        label = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
        job = cls(path=path, label=label)
        for number, raw in enumerate(path.read_text().splitlines(), start=1):
            text = raw.strip()
            if comment := _comment(text):
                job.comments.append((number, comment))
            if text.startswith("#SBATCH"):
                # sbatch reads #SBATCH lines only until the first command
                (job.ignored if job.commands else job.directives).extend(_parse_directives(number, text))
            elif match := NOT_RUNNABLE.match(text):
                job.not_runnable_reason = match.group(1) or "(no reason given)"
            elif text and not text.startswith("#"):
                job.commands.append((number, text))
        return job

    def get(self, name: str) -> Directive | None:
        """The option with this long name (the last one wins, as in sbatch), or None."""
        found = [d for d in self.directives if d.name == name]
        return found[-1] if found else None

    def value(self, name: str) -> str | None:
        directive = self.get(name)
        return directive.value if directive else None

    @property
    def partition(self) -> str | None:
        return self.value("--partition")

    @property
    def is_gpu(self) -> bool:
        return self.partition in GPU_PARTITIONS

    @property
    def is_array(self) -> bool:
        return self.get("--array") is not None

    @property
    def array_task_ids(self) -> list[int]:
        """The task numbers of --array: `1-3`, `0-9:2` (every second), `1,4,7`, `1-8%2` (2 at a time)."""
        tasks = []
        for part in (self.value("--array") or "").split("%")[0].split(","):
            if part:
                bounds, _, step = part.partition(":")
                first, _, last = bounds.partition("-")
                tasks += range(int(first), int(last or first) + 1, int(step or 1))
        return tasks

    @property
    def job_name(self) -> str:
        """What Slurm calls the job (%x): --job-name, else the file's name."""
        return self.value("--job-name") or self.path.name

    @property
    def first_command_line(self) -> int:
        return self.commands[0][0] if self.commands else 1


def _comment(text: str) -> str | None:
    """The comment on a line, as bash reads it: from a `#` that starts a word outside quotes. An
    #SBATCH line's comment is what follows its options; the shebang is no comment."""
    if text.startswith("#!"):
        return None
    start = len("#SBATCH") if text.startswith("#SBATCH") else 0
    quote = None
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1].isspace()):
            return text[index + 1 :].strip()
    return None


def _parse_directives(number: int, text: str) -> list[Directive]:
    """The options on one `#SBATCH ...  # comment` line."""
    try:
        tokens = shlex.split(text[len("#SBATCH") :], comments=True)
    except ValueError:  # an unclosed quote: sbatch would reject it; --test-only says so
        return []
    directives = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token.startswith("--") and "=" in token:
            written, value = token.split("=", 1)
        elif re.fullmatch(r"-[A-Za-z].+", token):  # `-t01:00:00`
            written, value = token[:2], token[2:]
        elif index < len(tokens) and not tokens[index].startswith("-"):  # `--time 01:00:00`, `-t 01:00:00`
            written, value = token, tokens[index]
            index += 1
        else:
            written, value = token, None
        directives.append(Directive(number, written, value))
    return directives


# ------------------------------------------------------------------------------------------------
# The rules
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    rule: str
    label: str
    line: int
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.label}:{self.line}: [{self.rule}] {self.what}. Fix: {self.fix}"


def long_options(job: JobFile) -> list[Problem]:
    """Long option names, so a newcomer can read the file (`--time`, not `-t`)."""
    problems = []
    for d in (d for d in job.directives if not d.written.startswith("--")):
        if d.written not in LONG_NAMES:
            fix = "write the option's long name (`man sbatch` lists them)"
        else:
            fix = f"write it as `{d.name}={d.value}`" if d.value is not None else f"write it as `{d.name}`"
        problems.append(Problem("long-options", job.label, d.line, f"`{d}` is a one-letter option", fix))
    return problems


def known_partition(job: JobFile) -> list[Problem]:
    """A partition Puma has, named explicitly."""
    choices = ", ".join(PARTITIONS)
    directive = job.get("--partition")
    if directive is None:
        return [Problem("partition", job.label, job.first_command_line, "no --partition",
                        f"add `#SBATCH --partition=standard` (or one of {choices})")]  # fmt: skip
    if directive.value not in PARTITIONS:
        return [Problem("partition", job.label, directive.line, f"--partition={directive.value} is not a Puma partition",
                        f"use one of {choices}")]  # fmt: skip
    return []


def account(job: JobFile) -> list[Problem]:
    """--account (your PI group) on standard, GPU and high-priority jobs; none on windfall."""
    directive = job.get("--account")
    if job.partition in WINDFALL and directive:
        return [Problem("account", job.label, directive.line,
                        f"--partition={job.partition} uses no allocation, so it takes no --account",
                        "remove the --account line (or use --partition=standard to spend your group's hours)")]  # fmt: skip
    if job.partition in PARTITIONS and job.partition not in WINDFALL and not directive:
        where = job.get("--partition").line
        return [Problem("account", job.label, where, f"--partition={job.partition} needs --account",
                        "add `#SBATCH --account=YOUR_GROUP` (your PI group: the command `va` shows it)")]  # fmt: skip
    return []


def high_priority_qos(job: JobFile) -> list[Problem]:
    """High-priority partitions (buy-in groups) also need --qos=user_qos_<group>."""
    if job.partition not in HIGH_PRIORITY:
        return []
    qos = job.value("--qos") or ""
    if qos.startswith("user_qos_"):
        return []
    line = job.get("--qos").line if job.get("--qos") else job.get("--partition").line
    return [Problem("high-priority-qos", job.label, line, f"--partition={job.partition} needs --qos=user_qos_<group>",
                    "add `#SBATCH --qos=user_qos_YOUR_GROUP` (only buy-in groups have one; else use standard)")]  # fmt: skip


def gpu_request(job: JobFile) -> list[Problem]:
    """GPU partitions ask for their GPUs with --gres=gpu...; CPU partitions ask for none."""
    gres = job.get("--gres")
    asks_gpu = gres is not None and (gres.value or "").startswith("gpu")
    other = job.get("--gpus") or job.get("--gpus-per-node") or job.get("--gpus-per-task")
    if job.partition in GPU_PARTITIONS and not asks_gpu:
        line = other.line if other else job.get("--partition").line
        return [Problem("gpu-request", job.label, line, f"--partition={job.partition} without a `--gres=gpu...` request",
                        "add `#SBATCH --gres=gpu:1` (or gpu:volta:N for N whole V100S GPUs), Puma's way to ask for GPUs")]  # fmt: skip
    if job.partition in CPU_PARTITIONS and (asks_gpu or other):
        directive = gres if asks_gpu else other
        return [Problem("gpu-request", job.label, directive.line,
                        f"`{directive}` on --partition={job.partition}, which has no GPUs",
                        "remove it, or use --partition=gpu_standard for a GPU job")]  # fmt: skip
    return []


def gpu_count(job: JobFile) -> list[Problem]:
    """`--gres=gpu:N` with no type only for one GPU: UArizona warns that a larger N there can hand
    out several A100 MIG slices; two to four whole V100S GPUs are `gpu:volta:N`."""
    gres = job.get("--gres")
    count = re.fullmatch(r"gpu:(\d+)", (gres.value or "") if gres else "")
    if not count or int(count.group(1)) <= 1:
        return []
    return [Problem("gpu-count", job.label, gres.line, f"`--gres=gpu:{count.group(1)}` names no GPU type",
                    f"use --gres=gpu:volta:{count.group(1)} for {count.group(1)} whole V100S GPUs (gpu:1 only for one GPU)")]  # fmt: skip


def no_mem_per_cpu(job: JobFile) -> list[Problem]:
    """Memory follows the CPUs (5 GB each); --mem-per-cpu only for the high-memory nodes."""
    directive = job.get("--mem-per-cpu")
    if directive is None or job.value("--constraint") == "hi_mem":
        return []
    return [Problem("mem-per-cpu", job.label, directive.line, f"`{directive}` sets memory per CPU",
                    "remove it: ask for more CPUs (--cpus-per-task) and the memory follows at 5 GB each, "
                    "or --mem for the whole job; high-memory nodes only: --mem-per-cpu=32gb --constraint=hi_mem")]  # fmt: skip


def time_limit(job: JobFile) -> list[Problem]:
    """--time set, at most Puma's 10 days."""
    directive = job.get("--time")
    if directive is None:
        return [Problem("time", job.label, job.first_command_line, "no --time",
                        "add `#SBATCH --time=HH:MM:SS`, a little longer than the job needs (the shorter, the sooner it starts)")]  # fmt: skip
    seconds = slurm_time_seconds(directive.value or "")
    if seconds is None:
        return [Problem("time", job.label, directive.line, f"--time={directive.value} is not a time Slurm understands",
                        "write it as HH:MM:SS or D-HH:MM:SS")]  # fmt: skip
    if seconds > MAX_DAYS * 86400:
        return [Problem("time", job.label, directive.line, f"--time={directive.value} is longer than Puma's limit of {MAX_DAYS} days",
                        f"ask for {MAX_DAYS}-00:00:00 or less, and save checkpoints so a new job can go on")]  # fmt: skip
    return []


def slurm_time_seconds(text: str) -> int | None:
    """Seconds in a Slurm time: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; None if it is none of those."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        return None
    days, first, second, third = match.groups()
    if days is not None:  # D-H[:M[:S]]
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
        return int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
    if third is not None:  # H:M:S
        return int(first) * 3600 + int(second) * 60 + int(third)
    return int(first) * 60 + int(second or 0)  # M or M:S


def output_names_the_log(job: JobFile) -> list[Problem]:
    """--output names the log after the job: %x and %j (%x, %A and %a for an array)."""
    needed = ("%x", "%A", "%a") if job.is_array else ("%x", "%j")
    example = "%x_%A_%a.out" if job.is_array else "%x_%j.out"
    problems = []
    directive = job.get("--output")
    if directive is None:
        problems.append(Problem("output", job.label, job.first_command_line, "no --output (the log would be slurm-<id>.out)",
                                f"add `#SBATCH --output={example}` so the log carries the job's name and number"))  # fmt: skip
    for directive in (d for d in (directive, job.get("--error")) if d is not None):
        missing = [token for token in needed if token not in (directive.value or "")]
        if missing:
            kind = "an array job's" if job.is_array else "the job's"
            problems.append(Problem("output", job.label, directive.line,
                                    f"`{directive}` lacks {' and '.join(missing)}, so logs of different jobs overwrite or hide each other",
                                    f"name {kind} log like `{directive.name}={example}`"))  # fmt: skip
    return problems


def strict_mode(job: JobFile) -> list[Problem]:
    """`set -euo pipefail` first, so the job stops at the first failing step."""
    if job.commands and re.fullmatch(r"set -euo pipefail(\s+#.*)?", job.commands[0][1]):
        return []
    return [Problem("strict-mode", job.label, job.first_command_line, "the first command is not `set -euo pipefail`",
                    "put `set -euo pipefail` right after the #SBATCH lines: then a failing step ends the job "
                    "with an error instead of running on and reporting success")]  # fmt: skip


def module_before_venv(job: JobFile) -> list[Problem]:
    """`module load python/...` before the venv is activated (the venv was made with that Python)."""
    problems = []
    loaded = False
    for line, text in job.commands:
        if MODULE_LOAD.match(text):
            loaded = True
        elif ACTIVATE.match(text) and not loaded:
            problems.append(Problem("module-before-venv", job.label, line, "the venv is activated before any `module load`",
                                    "put `module load python/3.11` (and `cuda12` for GPU jobs) before this line: "
                                    "a venv works only with the Python it was made with"))  # fmt: skip
    return problems


def directives_before_commands(job: JobFile) -> list[Problem]:
    """Every #SBATCH line before the first command: sbatch silently ignores the ones after."""
    return [
        Problem("ignored-directive", job.label, d.line, f"`#SBATCH {d}` comes after the first command, so sbatch ignores it",
                "move it up, to the other #SBATCH lines at the top")
        for d in job.ignored
    ]  # fmt: skip


def no_gpu_hours(job: JobFile) -> list[Problem]:
    """Hours are CPU hours: no comment promises "GPU hours", which Puma does not have. Every job,
    GPU or not, is charged its CPUs x its requested --time from the group's one pool
    (resources/allocations)."""
    problems = []
    for line, text in job.comments:
        if (claim := GPU_HOURS.search(text)) and not DENIED_GPU_HOURS.search(text):
            problems.append(Problem("cpu-hours", job.label, line, f"a comment speaks of \"{claim.group()}\", which Puma does not have",
                                    "say `CPU hours come from it`: every job, GPU or not, is charged its CPUs x its requested "
                                    "--time from the group's CPU hours (taken at submission, the unused part refunded)"))  # fmt: skip
    return problems


RULES = {
    "long-options": long_options,
    "partition": known_partition,
    "account": account,
    "high-priority-qos": high_priority_qos,
    "gpu-request": gpu_request,
    "gpu-count": gpu_count,
    "mem-per-cpu": no_mem_per_cpu,
    "time": time_limit,
    "output": output_names_the_log,
    "strict-mode": strict_mode,
    "module-before-venv": module_before_venv,
    "ignored-directive": directives_before_commands,
    "cpu-hours": no_gpu_hours,
}


def check(path: Path, root: Path | None = None) -> list[Problem]:
    """Every problem of the job file at `path`, in rule order."""
    job = JobFile.read(path, root)
    return [problem for rule in RULES.values() for problem in rule(job)]
