"""Shared test fixtures and helpers. The site's fixtures are in site_fixtures.py, the local Slurm's
in slurm_fixtures.py and slurm_cluster.py; helpers to run an example script are at the end."""

import atexit
import functools
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from tools.warm_python import WarmPython

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
IN_CI = os.environ.get("CI", "").lower() == "true"


@functools.cache
def example_names() -> frozenset[str]:
    """The examples: the scripts in examples/ that take the workshop's options (`workshop.make_parser`).
    The other modules there (workshop.py, digits.py, ...) are what examples import."""
    return frozenset({path.stem for path in (REPO / "examples").glob("*.py") if "workshop.make_parser(" in path.read_text()})


def skip_or_fail(reason: str):
    """Skip a test that cannot run here, with the reason; under CI=true nothing may skip."""
    if IN_CI:
        pytest.fail(f"CI=true, so this may not skip: {reason}")
    pytest.skip(reason)

# Fixture modules, one per area (each helper adds its own line).
pytest_plugins = ["slurm_fixtures", "site_fixtures", "notebook_fixtures"]


# Running an example script as a user would, and checking how it refuses bad input.
def run_script(script: Path, *args: str, timeout: float = 600, env: dict | None = None, hash_seed: int = 1) -> subprocess.CompletedProcess:
    """Run examples/<script> from the repository root on one thread (the tests share two cores),
    with no quick mode from the environment unless `--quick` is given; `env` adds variables.
    It runs in the warm Python started with `hash_seed` (tools/warm_python.py: the libraries
    already imported); a fresh interpreter's start is the jobs' (tests/test_job_files.py)."""
    environment = {**os.environ, "SLURM_CPUS_PER_TASK": "1", "MPLBACKEND": "Agg", **(env or {})}
    environment.pop("WORKSHOP_QUICK", None)
    return warm_python(hash_seed).run([str(script), *args], cwd=REPO, env=environment, timeout=timeout)


@functools.cache
def warm_python(hash_seed: int = 1) -> WarmPython:
    """One warm Python per hash seed and test process, started on first use and stopped when the process ends."""
    python = WarmPython(hash_seed).__enter__()
    atexit.register(python.__exit__)
    return python


def assert_refused_in_one_line(process: subprocess.CompletedProcess, named: str) -> None:
    """Bad input: exit status 2, one line on stderr that names the problem, no traceback, no result."""
    assert process.returncode == 2, f"exit status {process.returncode}, expected 2:\n{process.stderr}"
    assert len(process.stderr.strip().splitlines()) == 1, f"expected one line on stderr:\n{process.stderr}"
    assert named in process.stderr and "Traceback" not in process.stderr, process.stderr
    assert "result:" not in process.stdout


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder nobody can create, not even root (as the tests run): one under a regular file."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    return blocker / "results"


def run_example(example, scratch: Path, *extra: str, out: Path | None = None, hash_seed: int = 1) -> subprocess.CompletedProcess:
    """Run an example of tests/example_contracts.py in the warm Python: its quick arguments, then
    `extra`, with --out (default: scratch/out). `{tmp}` in an argument is `scratch`, made ready by
    the row's `prepare`."""
    if example.prepare:
        example.prepare(scratch)
    args = [arg.format(tmp=scratch) for arg in (*example.quick_args, *extra)]
    out = out or scratch / "out"
    return run_script(example.script, *args, "--out", str(out), env=example.environment, hash_seed=hash_seed)


@dataclass
class QuickRun:
    process: subprocess.CompletedProcess
    out: Path
    metrics: dict


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """quick_run(name): the example's quick run from tests/example_contracts.py, run once per
    session in the warm Python (its fresh start is its job's, tests/test_job_files.py). A test
    that asks for a run that failed fails, with the run's error."""
    from example_contracts import BY_NAME

    runs: dict[str, QuickRun] = {}

    def run(name: str) -> QuickRun:
        if name not in runs:
            scratch = tmp_path_factory.mktemp(f"{name}_quick")
            process = run_example(BY_NAME[name], scratch)
            metrics_file = scratch / "out" / "metrics.json"
            metrics = json.loads(metrics_file.read_text()) if process.returncode == 0 and metrics_file.is_file() else {}
            runs[name] = QuickRun(process, scratch / "out", metrics)
        if runs[name].process.returncode != 0:
            pytest.fail(f"the quick run of examples/{name}.py failed (exit status {runs[name].process.returncode}):\n{runs[name].process.stderr[-2000:]}")
        return runs[name]

    return run
