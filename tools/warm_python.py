"""A warm Python for the tests: runs `python3 examples/<name>.py ...` without paying, every time,
the seconds that importing PyTorch, NumPy, SciPy, pandas, scikit-learn and Matplotlib takes.

    with WarmPython() as python:
        process = python.run(["examples/digits_cnn.py", "--epochs", "0"], cwd=REPO, env=environment)
        process.returncode, process.stdout, process.stderr     # as subprocess.run(..., text=True) gives

The tests run each example many times: its quick run, the same run again, an explicit option,
and every bad input, most of which stop within a second of starting. On this project's 2-core
machines the imports alone take about 7 s of CPU per start, most of the test suite's time. So a
server process imports those libraries once (PRELOADED), then forks one child per run. The
child runs the script as the interpreter would: `sys.argv`, `__main__`, the script's folder first
on `sys.path`, its own working folder, environment, stdin from /dev/null, stdout and stderr, and
its exit status (an uncaught exception prints its traceback and exits 1; `sys.exit(2)` exits 2).
Only the imports are shared, and no project module (examples/) is imported before the fork.

What this cannot show is a fresh interpreter's start: every example's jobs (tests/test_job_files.py)
and its notebook still start one, as a person does. Nor does one server vary Python's hash seed,
which a fresh interpreter draws at random: a run compared with another (the same seed must give the
same metrics) runs in a second server started with another PYTHONHASHSEED.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

# The libraries the examples import; importing them is most of a short run's time. torch._dynamo
# is not imported by `import torch`, but by an optimizer's first step: as long again as torch.
PRELOADED = (
    "numpy",
    "scipy",
    "scipy.stats",
    "pandas",
    "PIL.Image",
    "torch",
    "torch._dynamo",
    "torch.nn",
    "torch.optim",
    "torch.utils.data",
    "sklearn",
    "sklearn.cluster",
    "sklearn.datasets",
    "sklearn.ensemble",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.preprocessing",
    "matplotlib",
    "matplotlib.pyplot",
)


class WarmPython:
    """One server process with PRELOADED imported; `run` forks a child of it per script run. Its
    children share the server's hash seed, `hash_seed` (PYTHONHASHSEED)."""

    def __init__(self, hash_seed: int = 0):
        self.hash_seed = hash_seed

    def __enter__(self) -> WarmPython:
        environment = {**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": str(self.hash_seed)}
        self._server = subprocess.Popen(
            [sys.executable, "-m", "tools.warm_python"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=Path(__file__).resolve().parent.parent,
        )
        return self

    def __exit__(self, *exc) -> None:
        self._server.stdin.close()
        self._server.wait(timeout=30)

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        """Run `python3 *argv` in `cwd` with exactly the environment `env`."""
        with tempfile.TemporaryDirectory(prefix="warm-python-") as scratch:
            stdout, stderr = Path(scratch) / "stdout", Path(scratch) / "stderr"
            request = {"argv": [str(arg) for arg in argv], "cwd": str(cwd), "env": env, "stdout": str(stdout), "stderr": str(stderr)}
            self._server.stdin.write(json.dumps(request) + "\n")
            self._server.stdin.flush()
            child = json.loads(self._reply(timeout=120))["pid"]  # the first reply comes once the imports are done
            try:
                returncode = json.loads(self._reply(timeout))["returncode"]
            except subprocess.TimeoutExpired:
                os.killpg(child, signal.SIGKILL)  # the child leads its own process group: its workers go too
                self._reply(timeout=30)
                raise subprocess.TimeoutExpired([sys.executable, *argv], timeout, stdout.read_text(), stderr.read_text()) from None
            return subprocess.CompletedProcess([sys.executable, *argv], returncode, stdout.read_text(), stderr.read_text())

    def _reply(self, timeout: float) -> str:
        ready, _, _ = select.select([self._server.stdout], [], [], timeout)
        if not ready:
            raise subprocess.TimeoutExpired("warm python", timeout)
        line = self._server.stdout.readline()
        if not line:
            raise RuntimeError(f"the warm Python server ended (exit status {self._server.poll()})")
        return line


def run_as_main(request: dict) -> int:
    """In the forked child: run the script as `python3 argv...` would, and return its exit status."""
    os.setpgid(0, 0)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    with open(os.devnull) as nothing:
        os.dup2(nothing.fileno(), 0)
    for descriptor, path in ((1, request["stdout"]), (2, request["stderr"])):
        with open(path, "w") as file:
            os.dup2(file.fileno(), descriptor)
    script = os.path.abspath(request["argv"][0])
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(script)
    try:
        runpy.run_path(script, run_name="__main__")
        status = 0
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            status = exit.code or 0
        else:
            print(exit.code, file=sys.stderr)
            status = 1
    except BaseException:
        traceback.print_exc()
        status = 1
    atexit._run_exitfuncs()  # as the interpreter does at its end
    sys.stdout.flush()
    sys.stderr.flush()
    return status


def serve() -> None:
    for module in PRELOADED:
        __import__(module)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                status = run_as_main(request)
            finally:
                os._exit(status)
        print(json.dumps({"pid": pid}), flush=True)
        _, wait_status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(wait_status)}), flush=True)


if __name__ == "__main__":
    serve()
