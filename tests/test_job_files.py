"""Four checks on every job file in slurm/, each test named after the file:

1. shellcheck finds nothing in it;
2. it follows Puma's rules (tools/job_rules.py; each rule proven by a bad job file in
   tests/bad_job_files/);
3. `sbatch --test-only` accepts it on the local Slurm, whose partitions and limits are Puma's
   (a job for several nodes: refused for its node count alone, accepted with --nodes=1);
4. submitted unchanged (quick mode), it ends with exit code 0, its log ends
   with the example's `result:` line, the example wrote results/<job name>_<job id>/metrics.json,
   and a GPU job, finding no GPU here, says in its log that it runs on the CPU. The jobs run in
   the background from the start of the session (tests/slurm_fixtures.py); these tests wait.
   A job file that a script in slurm/ submits (slurm/submit_sweep.sh: the sweep's array and its
   gathering job) is checked from that script's run, as a reader submits it, once per session.

A job file that cannot run on a one-node test cluster says so in a comment,
`# test: not-runnable-here: <reason>`, and gets checks 1 to 3 (4 too, if a script submits it).
"""

import re
import shutil
import subprocess

import pytest
from conftest import REPO, example_names, skip_or_fail
from tools.job_rules import RULES, JobFile, check
from tools.slurm_jobs import script_submitting

JOB_FILES = sorted((REPO / "slurm").glob("*.sbatch"))
JOBS = {path: JobFile.read(path, REPO) for path in JOB_FILES}
RUNNABLE = [path for path, job in JOBS.items() if job.not_runnable_reason is None or script_submitting(path)]
BAD_JOB_FILES = REPO / "tests" / "bad_job_files"

# A test over zero job files must fail, not pass: the one parameter `None` then stands for "none found".
EVERY_JOB_FILE = [pytest.param(p, id=p.name) for p in JOB_FILES] or [pytest.param(None, id="no-job-files")]
# Shell scripts beside the job files (e.g. submit_sweep.sh) are copied onto Puma too: shellcheck them as well.
EVERY_SHELL_FILE = EVERY_JOB_FILE + [pytest.param(p, id=p.name) for p in sorted((REPO / "slurm").glob("*.sh"))]
EVERY_RUNNABLE_JOB_FILE = [pytest.param(p, id=p.name) for p in RUNNABLE] or [pytest.param(None, id="no-runnable-job-files")]
RUNS_AN_EXAMPLE = re.compile(r"\bpython3?\s+examples/\w+\.py\b")


def require(job_file):
    if job_file is None:
        pytest.fail("found no job files to check in slurm/ (expected slurm/*.sbatch)")


# ------------------------------------------------------------------------------------------------
# 1. shellcheck
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("job_file", EVERY_SHELL_FILE)
def test_job_file_is_shellcheck_clean(job_file):
    require(job_file)
    if not shutil.which("shellcheck"):
        skip_or_fail("shellcheck is not installed (apt package shellcheck; `scripts/setup.sh --tests`)")
    # gcc format: one line per finding, file:line:column; slurm/.shellcheckrc is read as usual
    result = subprocess.run(["shellcheck", "--format=gcc", job_file.name], cwd=job_file.parent, capture_output=True, text=True)
    assert result.returncode == 0, f"shellcheck found problems in slurm/{job_file.name}:\n{result.stdout}{result.stderr}"


# ------------------------------------------------------------------------------------------------
# 2. Puma's rules, and proof that each rule fires
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("job_file", EVERY_JOB_FILE)
def test_job_file_follows_pumas_rules(job_file):
    require(job_file)
    problems = check(job_file, REPO)
    assert not problems, "the job file breaks Puma's rules:\n" + "\n".join(map(str, problems))


@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_rule_fires_on_its_bad_job_file_at_the_marked_line_and_no_other_rule_does(rule):
    bad = BAD_JOB_FILES / f"{rule}.sbatch"
    assert bad.is_file(), f"rule {rule!r} has no bad job file proving it fires: add {bad.relative_to(REPO)}"
    problems = check(bad, REPO)
    fired = {problem.rule for problem in problems}
    assert fired == {rule}, f"{bad.name} should break exactly the rule {rule!r}; these fired: {sorted(fired)}\n" + "\n".join(
        map(str, problems)
    )
    # The bad line carries the comment `BAD:` saying what is wrong; the messages must point at it.
    marked = {number for number, line in enumerate(bad.read_text().splitlines(), start=1) if "BAD:" in line}
    assert {problem.line for problem in problems} == marked, "\n".join(map(str, problems))
    for problem in problems:
        assert str(problem).startswith(f"tests/bad_job_files/{bad.name}:{problem.line}: [{rule}] ") and ". Fix: " in str(problem)


def test_every_bad_job_file_is_named_after_a_rule():
    names = {path.stem for path in BAD_JOB_FILES.glob("*.sbatch")}
    assert names, f"no bad job files in {BAD_JOB_FILES.relative_to(REPO)}"
    assert names <= set(RULES), f"bad job files for rules that do not exist: {sorted(names - set(RULES))}"


@pytest.mark.parametrize("bad", sorted(BAD_JOB_FILES.glob("*.sbatch")), ids=lambda p: p.name)
def test_bad_job_files_are_wrong_only_in_their_rule_and_otherwise_shellcheck_clean(bad):
    if not shutil.which("shellcheck"):
        skip_or_fail("shellcheck is not installed (apt package shellcheck; `scripts/setup.sh --tests`)")
    result = subprocess.run(["shellcheck", "--format=gcc", str(bad)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_not_runnable_job_files_say_why():
    for path, job in JOBS.items():
        if job.not_runnable_reason is not None:
            assert len(job.not_runnable_reason) > 10, f"{path.name}: `# test: not-runnable-here:` needs a reason"


# ------------------------------------------------------------------------------------------------
# 3. sbatch --test-only
# ------------------------------------------------------------------------------------------------
@pytest.mark.slurm
@pytest.mark.parametrize("job_file", EVERY_JOB_FILE)
def test_job_file_is_accepted_by_sbatch_test_only(job_file, slurm_cluster):
    require(job_file)
    job = JOBS[job_file]
    result = slurm_cluster.test_only(job_file)
    if job.not_runnable_reason and int(job.value("--nodes") or 1) > 1:
        # The test Slurm has one node (a Puma GPU node: 94 CPUs, 4 stand-in GPUs): it must refuse
        # a multi-node job, and for its node count alone. Shrunk on the command line to that
        # node, the rest of the file (partition, time, CPUs, GPUs, log, ...) must be accepted.
        assert result.returncode != 0 and "Node count specification invalid" in result.stderr, result.stderr
        result = slurm_cluster.test_only(job_file, "--nodes=1")
    assert result.returncode == 0, f"sbatch --test-only refused slurm/{job_file.name}:\n{result.stderr}{result.stdout}"
    assert f"in partition {job.partition}" in result.stderr, result.stderr


# ------------------------------------------------------------------------------------------------
# 4. submitted unchanged, and what it left behind
# ------------------------------------------------------------------------------------------------
@pytest.mark.slurm
@pytest.mark.parametrize("job_file", EVERY_RUNNABLE_JOB_FILE)
def test_job_file_runs_unchanged_and_its_log_ends_with_the_result(job_file, slurm_cluster):
    require(job_file)
    script = script_submitting(job_file)
    if script:
        _, runs = slurm_cluster.submit_script(script)
        run = next((run for run in runs if run.job_file == job_file), None)
        assert run, f"{script.relative_to(REPO)} submitted no job from {job_file.name}: {[r.job_file.name for r in runs]}"
    else:
        run = slurm_cluster.submit(job_file)
    job = JOBS[job_file]
    assert run.job_id is not None, f"sbatch did not accept the job\n{run.explain()}"
    assert run.exit_code == 0, f"the job ended with exit code {run.exit_code}\n{run.explain()}"

    expected_logs = len(job.array_task_ids) if job.is_array else 1
    assert len(run.logs) == expected_logs, f"expected {expected_logs} log(s), found {sorted(run.logs)}\n{run.explain()}"
    for name, text in run.logs.items():
        lines = text.strip().splitlines()
        assert lines and lines[-1].startswith("result:"), f"{name} does not end with a `result:` line\n{run.explain()}"

    if any(RUNS_AN_EXAMPLE.search(command) for _, command in job.commands):
        for folder in run.results_dirs():
            assert (folder / "metrics.json").is_file(), f"{folder.relative_to(run.scratch)}/metrics.json is missing\n{run.explain()}"

    if job.is_gpu:
        for name, text in run.logs.items():
            assert "running on the CPU" in text, f"{name}: a GPU job on this GPU-less machine must say it falls back to the CPU\n{run.explain()}"

    # Torch threads plus data-loader workers are the CPUs the job asked for (or the cores the
    # test cluster gives its jobs, where those are fewer: a job asking for 4 runs on 2 here).
    cpus = min(int(job.value("--cpus-per-task") or 1), len(slurm_cluster.cluster.job_cores()))
    for name, text in run.logs.items():
        for threads, workers, total in re.findall(r"^threads: (\d+) torch \+ (\d+) loader workers = (\d+) CPUs", text, re.MULTILINE):
            assert int(threads) + int(workers) == int(total) == cpus, (
                f"{name}: {threads} torch threads + {workers} loader workers, but the job has {cpus} CPUs\n{run.explain()}"
            )


def test_every_example_starts_in_a_fresh_python_in_some_job_that_runs_here():
    # The contract tests run the examples in the warm Python (tools/warm_python.py); a fresh
    # interpreter's start, with nothing imported, is what the jobs above show.
    started = {name for path in RUNNABLE for name in re.findall(r"\bpython3?\s+examples/(\w+)\.py", path.read_text())}
    missing = example_names() - started
    assert not missing, f"no job file that runs on the local Slurm starts these examples: {sorted(missing)}"


def test_array_task_numbers_are_read_like_slurm_reads_them(tmp_path):
    def tasks(spec):
        (tmp_path / "array.sbatch").write_text(f"#!/bin/bash\n#SBATCH --array={spec}\n")
        return JobFile.read(tmp_path / "array.sbatch").array_task_ids

    assert tasks("1-3") == [1, 2, 3]
    assert tasks("0-9:4%2") == [0, 4, 8]
    assert tasks("1,5,7-8") == [1, 5, 7, 8]
