"""examples/hello_gpu.py, the script of the first GPU job: its log says which device the product
ran on (without a GPU: that it fell back to the CPU, and why), and the product is right.

The job file that runs it, slurm/hello_gpu.sbatch, is submitted to the local Slurm by
tests/test_job_files.py, and its log is the sample on the partitions page
(tests/test_running_jobs_pages.py).
"""

import re

import torch


def test_the_log_names_the_device_and_without_a_gpu_says_it_runs_on_the_cpu(quick_run):
    run = quick_run("hello_gpu")
    device_lines = [line for line in run.process.stdout.splitlines() if line.startswith("device: ")]
    assert len(device_lines) == 1, f"expected one `device:` line in the log:\n{run.process.stdout}"
    assert run.metrics["run"]["device"] == device_lines[0].split()[1]
    if not torch.cuda.is_available():
        assert re.fullmatch(r"device: cpu \(.+; running on the CPU\)", device_lines[0]), device_lines[0]


def test_the_product_matches_the_cpus_in_double_precision(quick_run):
    metrics = quick_run("hello_gpu").metrics
    # float32 against float64 for a 256 x 256 product: about 3e-7; a wrong product is off by about 1
    assert metrics["relative_error"] < 1e-5, f"the product is wrong: relative error {metrics['relative_error']:.2e}"
