"""examples/hello_gpu.py, the script of the first GPU job: without a GPU it says so and runs on
the CPU, its product is right, it writes metrics.json and ends with the `result:` line, and it
refuses bad input with one line and exit status 2.

Run with one thread (SLURM_CPUS_PER_TASK=1): the tests share two cores. The job file that runs
it, slurm/hello_gpu.sbatch, is submitted to the local Slurm by tests/test_job_files.py.
"""

import json
import os
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "examples" / "hello_gpu.py"


def run_example(*args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "SLURM_CPUS_PER_TASK": "1"}
    environment.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=environment, cwd=REPO, timeout=120)


def test_hello_gpu_without_a_gpu_says_so_and_computes_the_right_product_on_the_cpu(tmp_path):
    process = run_example("--quick", "--out", str(tmp_path))
    assert process.returncode == 0, process.stderr
    lines = process.stdout.strip().splitlines()
    assert "device: cpu (no GPU found; running on the CPU)" in lines
    assert lines[-1].startswith("result: device=cpu gflops=")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # float32 against float64 for a 256 x 256 product: about 3e-7; a wrong product is near 1
    assert metrics["relative_error"] < 1e-5
    assert metrics["size"] == 256 and metrics["gflops"] > 0
    assert metrics["run"]["device"] == "cpu" and metrics["run"]["threads"] == 1


def test_hello_gpu_refuses_a_size_of_zero_with_one_line_and_exit_status_2(tmp_path):
    process = run_example("--size", "0", "--out", str(tmp_path))
    assert process.returncode == 2
    assert process.stderr.strip() == "hello_gpu.py: error: argument --size: 0 must be 1 or more (see hello_gpu.py --help)"
    assert not (tmp_path / "metrics.json").exists()
