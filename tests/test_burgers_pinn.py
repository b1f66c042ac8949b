"""examples/burgers_pinn.py: in quick mode the physics-informed network learns Burgers' equation far
better than an untrained network, writes its prediction on the paper's 256 x 100 grid, gives the
same numbers for the same seed, and refuses bad input with one line and exit status 2, leaving
earlier results alone.

Each run is a subprocess with one thread (SLURM_CPUS_PER_TASK=1): the tests share two cores.
"""

import json
import re
import subprocess

import numpy as np
import pytest

from conftest import REPO, assert_refused_in_one_line, run_script, unwritable_folder

SCRIPT = REPO / "examples" / "burgers_pinn.py"


def run_example(*args: str) -> subprocess.CompletedProcess:
    return run_script(SCRIPT, *args)


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Two quick runs with the same seed: (process, metrics, out folder) for each."""
    runs = []
    for attempt in ("first", "second"):
        out = tmp_path_factory.mktemp(f"burgers_pinn_{attempt}")
        process = run_example("--quick", "--seed", "0", "--out", str(out))
        assert process.returncode == 0, f"quick run failed:\n{process.stdout[-2000:]}\n{process.stderr[-2000:]}"
        runs.append((process, json.loads((out / "metrics.json").read_text()), out))
    return runs


def test_burgers_pinn_learns_the_solution_far_better_than_an_untrained_network_in_quick_mode(quick_runs):
    # The untrained network (with the initial and boundary conditions built in) is off by 0.60,
    # and u(t, x) = -sin(pi x) frozen in time by 0.59. Quick mode reached 5.4e-3 to 7.2e-3 over
    # seeds 0-3 (error around 1e-2 is what issue 5 asks of it); the floor of 3e-2 leaves room and is
    # far out of reach of a network that did not learn the front at x = 0.
    _, metrics, _ = quick_runs[0]
    assert metrics["untrained_rel_l2_error"] > 0.3, "the untrained reference should be far off"
    assert metrics["rel_l2_error"] < 3e-2, f"relative L2 error {metrics['rel_l2_error']:.3g} is above the floor of 3e-2"


def test_burgers_pinn_writes_its_prediction_on_the_papers_256_by_100_grid(quick_runs):
    _, metrics, out = quick_runs[0]
    with np.load(out / "prediction.npz") as prediction:
        x, t, u = prediction["x"], prediction["t"], prediction["u"]
    assert x.shape == (256,) and t.shape == (100,) and u.shape == (100, 256)
    assert np.allclose(x, np.linspace(-1, 1, 256)) and np.allclose(t, np.arange(100) * 0.01)
    # Row 0 is t = 0, where the built-in initial condition holds exactly.
    assert np.abs(u[0] + np.sin(np.pi * x)).max() < 1e-5


def test_burgers_pinn_writes_figures_metrics_and_ends_with_the_result_line(quick_runs):
    process, metrics, out = quick_runs[0]
    assert process.stdout.strip().splitlines()[-1].startswith("result: rel_l2_error="), process.stdout[-500:]
    for figure in ("solution.png", "slices.png", "error.png", "training.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure} is not a PNG"
    assert metrics["run"]["threads"] == 1, "the run should use the one CPU SLURM_CPUS_PER_TASK gave it"
    assert re.search(r"^device: (cuda|cpu \(.*running on the CPU\))", process.stdout, re.MULTILINE), "no device line"
    settings = metrics["settings"]
    assert metrics["steps"] == settings["adam_steps"] + settings["lbfgs_steps"], "the run is capped by its step counts"
    history = metrics["history"]
    assert [row["step"] for row in history] == sorted({row["step"] for row in history}), "steps should only go up"
    assert history[-1]["rel_l2_error"] == pytest.approx(metrics["rel_l2_error"], rel=1e-6)


def test_burgers_pinn_prints_a_progress_line_with_error_speed_and_time_left_per_block(quick_runs):
    process, metrics, _ = quick_runs[0]
    lines = re.findall(r"^step (\d+)/(\d+) .*rel_l2_error \S+ .* steps/s .* left \d+:\d\d:\d\d$", process.stdout, re.MULTILINE)
    assert len(lines) == len(metrics["history"]) - 1, process.stdout[-2000:]
    assert lines[-1][0] == lines[-1][1] == str(metrics["steps"])


def test_burgers_pinn_same_seed_gives_the_same_metrics(quick_runs):
    (_, first, _), (_, second, _) = quick_runs
    for metrics in (first, second):
        metrics.pop("run")
        metrics.pop("train_time_s")
        metrics.pop("time_to_error_1e-3_s")
        for row in metrics["history"]:
            row.pop("time_s")
    assert first == second


BAD_INPUTS = {
    "negative_points": (["--points", "-5"], "--points"),
    "zero_points": (["--points", "0"], "--points"),
    "negative_lbfgs_steps": (["--lbfgs-steps", "-1"], "--lbfgs-steps"),
    "non_numeric_width": (["--width", "wide"], "--width"),
    "unknown_dtype": (["--dtype", "float16"], "--dtype"),
    "unknown_constraint": (["--constraint", "medium"], "--constraint"),
    "unknown_option": (["--epochs", "3"], "unrecognized arguments"),
}


@pytest.mark.parametrize("args, named", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_burgers_pinn_refuses_bad_input_with_one_line_and_exit_status_2(args, named, tmp_path):
    process = run_example("--quick", "--out", str(tmp_path), *args)
    assert_refused_in_one_line(process, named)


def test_burgers_pinn_refuses_an_out_folder_it_cannot_create(tmp_path):
    process = run_example("--quick", "--out", str(unwritable_folder(tmp_path)))
    assert_refused_in_one_line(process, "cannot write to --out")


def test_burgers_pinn_failing_run_leaves_earlier_results_untouched(tmp_path):
    earlier = '{"rel_l2_error": 0.0007, "from": "an earlier run"}\n'
    (tmp_path / "metrics.json").write_text(earlier)
    process = run_example("--quick", "--out", str(tmp_path), "--points", "-5")
    assert process.returncode == 2, process.stderr
    assert (tmp_path / "metrics.json").read_text() == earlier
