"""The `slurm_cluster` fixture: a real local Slurm for the whole test session.

    def test_something(slurm_cluster):
        run = slurm_cluster.submit(REPO / "slurm" / "digits_cnn.sbatch")
        assert run.exit_code == 0, run.explain()
        assert run.log.strip().splitlines()[-1].startswith("result:")
        metrics = run.results_dir / "metrics.json"

`slurm_cluster` is a tools.slurm_jobs.LocalSlurm in quick mode: `submit` hands the job file,
unchanged, to sbatch from a fresh scratch copy of the repository, with only `--account` (when the
file has one) and `--export=ALL,WORKSHOP_VENV=<the project's .venv>,WORKSHOP_QUICK=1` on the
command line, waits for the job to end and returns a JobRun; each job file is submitted once per
session, and later calls, from any test, get the same JobRun. `launch` submits without waiting
(a Job: `wait_for_line`, `state`, `wait`), `launch_script` runs a script that submits jobs
itself; see tools/slurm_jobs.py.

Jobs run while other tests run: when the fixture starts the cluster (the Slurm tests come first,
tests/scheduling.py), every job file that a selected test submits (a test parametrized with
`job_file`, using this fixture; or the script in slurm/ that submits it) is submitted in the background, in test order, as cores become
free; a job a test is waiting for goes first. The jobs get this machine's cores less one for each
other pytest-xdist worker, and less the one this test process runs on, except while it waits
for a job (WORKSHOP_SLURM_CPUS sets the cores instead).

When a test that uses the cluster fails, its report ends with the tail of the slurmctld, slurmd
and munged logs, and the run ends with a table of what the cluster and each job took.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import REPO, skip_or_fail
from tools.job_rules import JobFile
from tools.slurm_cluster import ClusterError, SlurmCluster, missing_requirements
from tools.slurm_jobs import TEST_ACCOUNT, LocalSlurm, default_cpus, script_submitting

_session: list[LocalSlurm] = []
_timings: dict[str, float] = {}  # for the summary at the end of the run: what the Slurm tests cost


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory, request):
    """A running single-node Slurm with Puma's partitions; stopped at the end of the session."""
    problem = missing_requirements()
    if problem:
        skip_or_fail(f"no local Slurm: {problem}")
    other_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) - 1
    cpus = int(os.environ.get("WORKSHOP_SLURM_CPUS") or max(1, default_cpus() - other_workers))
    started = time.monotonic()
    try:
        # The jobs run on the last `cpus` cores, as Puma runs a job on the cores it was given.
        cluster = SlurmCluster.start(cores=sorted(os.sched_getaffinity(0))[-cpus:])
    except ClusterError as error:
        pytest.fail(str(error), pytrace=False)
    _timings["start the cluster"] = time.monotonic() - started
    slurm = LocalSlurm(cluster, tmp_path_factory.mktemp("slurm-jobs"), quick=True, account=TEST_ACCOUNT, cpus=cpus, shares_cores=True)
    _session.append(slurm)
    slurm.start(job_files_to_submit(request.session.items))
    try:
        yield slurm
    finally:
        finished = slurm.finished()
        slurm.shutdown()
        started = time.monotonic()
        cluster.stop()
        _timings["stop the cluster"] = time.monotonic() - started
        _timings.update({f"job {run.job_file.relative_to(REPO)}": run.seconds for run in finished})
        _session.clear()


def job_files_to_submit(items) -> list[Path]:
    """What these tests submit (parameter `job_file`), in test order: each runnable job file, or
    the script in slurm/ that submits it (slurm/submit_sweep.sh)."""
    found = []
    for item in items:
        job_file = getattr(item, "callspec", None) and item.callspec.params.get("job_file")
        if "slurm_cluster" in getattr(item, "fixturenames", ()) and isinstance(job_file, Path) and job_file.suffix == ".sbatch":
            submitted = script_submitting(job_file) or (job_file if JobFile.read(job_file).not_runnable_reason is None else None)
            if submitted and submitted not in found:
                found.append(submitted)
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _session and "slurm_cluster" in getattr(item, "fixturenames", ()):
        report.sections.append(("local Slurm: the daemons' logs", _session[0].cluster.log_tail()))


def pytest_sessionfinish(session):
    if _timings and hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: to the main process
        session.config.workeroutput["slurm_timings"] = dict(_timings)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _timings.update(getattr(node, "workeroutput", {}).get("slurm_timings", {}))


def pytest_terminal_summary(terminalreporter):
    if _timings:
        terminalreporter.section("local Slurm: seconds taken (a job: from submission to its end)")
        for what, seconds in _timings.items():
            terminalreporter.write_line(f"{seconds:7.1f}  {what}")
