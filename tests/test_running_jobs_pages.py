"""The "Running jobs on Puma" pages show what their job files really print.

Every sample output on those pages (docs/running-jobs/) is a file under docs/results/<job>/
that a test run wrote: the line sbatch printed, the job's log, what squeue showed. The pages
include these files (pymdownx.snippets), so nothing is typed by hand. The tests here submit the
same job files (once per session: the runs of tests/test_job_files.py) and compare: a sample
that no longer matches what its job file prints fails, with the command that rewrites it.
Node names and numbers (job ids, times, speeds) differ from run to run and are masked before
comparing, so a sample stays valid until the job file's output really changes.

    WORKSHOP_UPDATE_SAMPLES=1 .venv/bin/python -m pytest tests/test_running_jobs_pages.py
"""

import difflib
import os
import re

import pytest
from conftest import REPO
from tools.job_rules import JobFile

PAGES = REPO / "docs" / "running-jobs"
SAMPLES = REPO / "docs" / "results"
UPDATE = os.environ.get("WORKSHOP_UPDATE_SAMPLES") == "1"
SAMPLED_JOB_FILES = ["hello_job", "hello_array", "hello_gpu"]
INCLUDE = re.compile(r'--8<--\s+"([^"]+)"')


def masked(text: str) -> str:
    """The text with what changes between runs replaced: node names, numbers, spacing."""
    text = re.sub(r"\b(node[ =:]+)[\w.-]+", r"\1<node>", text)
    text = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "<n>", text)
    return "\n".join(re.sub(r"[ \t]+", " ", line).strip() for line in text.strip().splitlines())


def check_or_update(sample, fresh: str, made_by: str) -> None:
    """Compare the committed sample with a fresh output (masked); rewrite it in update mode."""
    if UPDATE:
        sample.parent.mkdir(parents=True, exist_ok=True)
        sample.write_text(fresh.rstrip("\n") + "\n")
        return
    where = sample.relative_to(REPO)
    assert sample.is_file(), f"{where} is missing: {made_by}; make it with WORKSHOP_UPDATE_SAMPLES=1 (see {__name__}.py)"
    old, new = masked(sample.read_text()), masked(fresh)
    diff = "\n".join(difflib.unified_diff(old.splitlines(), new.splitlines(), "on the page", "now", lineterm=""))
    assert old == new, (
        f"{where} (shown on a page) is no longer what {made_by} prints. Rewrite it with\n"
        "    WORKSHOP_UPDATE_SAMPLES=1 .venv/bin/python -m pytest tests/test_running_jobs_pages.py\n"
        f"and commit it. Masked difference:\n{diff}"
    )


@pytest.mark.slurm
@pytest.mark.parametrize("job_file", [REPO / "slurm" / f"{stem}.sbatch" for stem in SAMPLED_JOB_FILES], ids=SAMPLED_JOB_FILES)
def test_sample_outputs_on_the_pages_are_what_the_job_file_prints(job_file, slurm_cluster):
    stem = job_file.stem
    run = slurm_cluster.submit(job_file)
    assert run.exit_code == 0, run.explain()
    made_by = f"slurm/{stem}.sbatch"
    check_or_update(SAMPLES / stem / "sbatch.txt", run.sbatch_output.splitlines()[0], f"sbatch for {made_by}")
    if JobFile.read(job_file).is_array:
        for task, text in zip(run.array_tasks(), run.logs.values()):
            check_or_update(SAMPLES / stem / f"log_task_{task}.txt", text, made_by)
    else:
        check_or_update(SAMPLES / stem / "log.txt", run.log, made_by)


@pytest.mark.slurm
def test_squeue_lists_a_held_array_as_pending_and_scancel_removes_it(slurm_cluster):
    # The squeue sample on the pages: hello_array submitted with --hold, so its tasks wait (PD),
    # on one line, with the reason JobHeldUser for as long as the test looks; then scancel
    # takes the whole array out of the queue.
    job = slurm_cluster.launch(REPO / "slurm" / "hello_array.sbatch", options=("--hold",), cpus=0)
    assert job.id is not None, job.sbatch_output
    listed = slurm_cluster.run("squeue", "--me", check=True).stdout
    header, *rows = listed.splitlines()
    ours = [row for row in rows if row.split()[0].split("_")[0] == str(job.id)]
    assert len(ours) == 1 and f"{job.id}_[1-3] " in ours[0] and " PD " in ours[0] and "(JobHeldUser)" in ours[0], listed

    slurm_cluster.run("scancel", str(job.id), check=True)
    run = job.wait(timeout=20)
    assert run.state == "CANCELLED", f"scancel left the array's tasks in the queue:\n{run.explain()}"
    # other tests' jobs may be queued too: the sample shows this job's line under the header
    check_or_update(SAMPLES / "hello_array" / "squeue.txt", "\n".join([header, *ours]), "squeue --me (a held hello_array)")


def test_every_sample_on_the_pages_is_made_by_a_test():
    made = {f"docs/results/{stem}/{name}" for stem in SAMPLED_JOB_FILES for name in ("sbatch.txt", "log.txt")}
    made |= {f"docs/results/hello_array/log_task_{task}.txt" for task in JobFile.read(REPO / "slurm" / "hello_array.sbatch").array_task_ids}
    made.add("docs/results/hello_array/squeue.txt")
    included = {name for page in PAGES.glob("*.md") for name in INCLUDE.findall(page.read_text())}
    assert included, f"no page in {PAGES.relative_to(REPO)} includes any file"
    samples = {name for name in included if name.startswith("docs/results/")}
    assert samples, "the running-jobs pages show no sample output"
    assert samples <= made, f"samples on the pages that no test writes: {sorted(samples - made)}"


def test_every_job_file_on_the_pages_is_one_the_tests_submit():
    included = {name for page in PAGES.glob("*.md") for name in INCLUDE.findall(page.read_text())}
    job_files = {name for name in included if name.startswith("slurm/")}
    assert job_files, "the running-jobs pages include no job file from slurm/"
    for name in job_files:
        assert (REPO / name).is_file() and name.endswith(".sbatch"), f"{name}: a page includes a job file that is not in slurm/"


@pytest.mark.slurm
def test_a_job_over_pumas_time_limit_is_refused_with_the_message_the_first_job_page_quotes(slurm_cluster):
    # The page shows both outcomes: refused at once (EnforcePartLimits, as here), or pending for
    # ever with the reason PartitionTimeLimit on a cluster without that setting.
    page = (PAGES / "first-job.md").read_text()
    job_file = REPO / "slurm" / "hello_job.sbatch"
    result = slurm_cluster.run("sbatch", *slurm_cluster.submit_args(job_file), "--time=10-00:00:01", str(job_file), cwd=REPO)
    refusal = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    assert result.returncode != 0, f"sbatch accepted a job over the 10-day limit:\n{result.stdout}{result.stderr}"
    assert refusal and refusal in page, f"first-job.md should quote what sbatch prints: {refusal!r}"
    assert "(PartitionTimeLimit)" in page, "first-job.md should also show the other outcome: pending with reason PartitionTimeLimit"
