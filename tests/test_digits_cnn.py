"""examples/digits_cnn.py: quick training takes the CNN from guessing to reading digits, the same
seed gives the same numbers, a folder of images (`--data`) is learned from, the GPU job file
stages an archive to node-local /tmp and trains on it, and bad input gets one line and exit
status 2, leaving earlier results alone.

Each run is a subprocess with one thread (SLURM_CPUS_PER_TASK=1): the tests share two cores.
"""

import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_script

SCRIPT = REPO / "examples" / "digits_cnn.py"
GPU_JOB_FILE = REPO / "slurm" / "digits_cnn_gpu.sbatch"
QUICK_EPOCHS = 4
DIGITS = 1797  # images in scikit-learn's digits
# Stand-in for the fungi photos: three classes a person tells apart at a glance.
GENERATED_CLASSES = ("blue_rings", "green_stripes", "red_blobs")
GENERATED_PER_CLASS = 8


def run_example(*args: str) -> subprocess.CompletedProcess:
    return run_script(SCRIPT, *args)


def succeeded(process: subprocess.CompletedProcess) -> str:
    return f"exit status {process.returncode}\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"


def make_image_folder(root: Path) -> Path:
    """A small ImageFolder: root/<class>/<n>.png (one JPEG per class too), 20x16 pixels, noisy."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:16, 0:20]
    patterns = {
        "blue_rings": lambda: np.stack([0 * x, 0 * x, 255 * (np.hypot(x - 10, y - 8) % 6 < 3)], -1),
        "green_stripes": lambda: np.stack([0 * x, 255 * (x % 4 < 2), 0 * x], -1),
        "red_blobs": lambda: np.stack([255 * (np.hypot(x - rng.integers(5, 15), y - 8) < 5), 0 * x, 0 * x], -1),
    }
    for name in GENERATED_CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(GENERATED_PER_CLASS):
            noisy = np.clip(patterns[name]() + rng.normal(0, 30, (16, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / name / (f"{i}.jpg" if i == 0 else f"{i}.png"))
    return root


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Two quick runs with the same seed: (process, metrics, out folder) for each."""
    runs = []
    for attempt in ("first", "second"):
        out = tmp_path_factory.mktemp(f"digits_cnn_{attempt}")
        process = run_example("--quick", "--seed", "0", "--out", str(out))
        assert process.returncode == 0, f"quick run failed: {succeeded(process)}"
        runs.append((process, json.loads((out / "metrics.json").read_text()), out))
    return runs


# ------------------------------------------------------------------------------------------------
# What the run learns
# ------------------------------------------------------------------------------------------------
def test_digits_cnn_beats_chance_by_far_after_quick_training(quick_runs):
    # Quick mode (4 epochs) scored 97.5-99.7% on the 359 test digits over seeds 0-11. Guessing
    # scores 10%. The floor of 90% leaves room for an unlucky seed or machine, and no guess
    # comes near it.
    _, metrics, _ = quick_runs[0]
    assert metrics["chance_level"] == pytest.approx(0.1)
    assert metrics["test_accuracy"] >= 0.90, f"test accuracy {metrics['test_accuracy']:.1%} is below the floor of 90%"
    assert min(metrics["per_class_accuracy"].values()) >= 0.5, f"some digit is mostly missed: {metrics['per_class_accuracy']}"


def test_digits_cnn_is_no_better_than_guessing_before_training(quick_runs):
    # Untrained, the model scored 9.7-10.9% over seeds 0-11 (it says the same digit for most
    # images); guessing scores 10%.
    _, metrics, _ = quick_runs[0]
    assert abs(metrics["accuracy_before"] - metrics["chance_level"]) <= 0.1, (
        f"before training: {metrics['accuracy_before']:.1%}, guessing: {metrics['chance_level']:.1%}"
    )


def test_digits_cnn_scores_held_out_images_of_every_class(quick_runs):
    _, metrics, _ = quick_runs[0]
    assert metrics["n_train"] + metrics["n_validation"] + metrics["n_test"] == DIGITS
    assert metrics["n_test"] >= 0.15 * DIGITS and metrics["n_validation"] > 0
    assert sorted(metrics["per_class_accuracy"]) == [str(d) for d in range(10)]
    assert metrics["data"] == "scikit-learn handwritten digits" and metrics["image_size"] == 8


def test_digits_cnn_logs_before_and_after_one_line_per_epoch_and_ends_with_the_result(quick_runs):
    process, metrics, _ = quick_runs[0]
    lines = process.stdout.strip().splitlines()
    assert any(line.startswith("test accuracy before training:") and "no better than guessing" in line for line in lines)
    assert any(line.startswith("test accuracy after training:") for line in lines)
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == QUICK_EPOCHS == metrics["epochs"], "\n".join(epochs)
    for line in epochs:
        assert all(part in line for part in ("loss", "val_accuracy", "images/s", "left")), line
    assert "device: cpu" in process.stdout and "data loader workers: 0" in process.stdout
    assert lines[-1].startswith("result: test_accuracy=")


def test_digits_cnn_writes_its_figures_and_metrics(quick_runs):
    _, metrics, out = quick_runs[0]
    for figure in ("confusion_matrix.png", "training_curves.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure} is not a PNG"
    assert len(metrics["history"]["validation_accuracy"]) == QUICK_EPOCHS
    assert 1 <= metrics["best_epoch"] <= QUICK_EPOCHS
    assert metrics["run"]["threads"] == 1 and metrics["run"]["images_per_second"] > 0


def test_digits_cnn_same_seed_gives_the_same_metrics(quick_runs):
    (_, first, _), (_, second, _) = quick_runs
    first, second = ({k: v for k, v in m.items() if k != "run"} for m in (first, second))
    assert first == second


# ------------------------------------------------------------------------------------------------
# A folder of images (--data), as the GPU job file gives it after staging
# ------------------------------------------------------------------------------------------------
def test_digits_cnn_learns_from_a_folder_of_images_with_data(tmp_path):
    folder = make_image_folder(tmp_path / "images")
    out = tmp_path / "out"
    process = run_example("--quick", "--data", str(folder), "--image-size", "16", "--out", str(out))
    assert process.returncode == 0, succeeded(process)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] == str(folder)
    assert metrics["classes"] == list(GENERATED_CLASSES)
    assert metrics["n_train"] + metrics["n_validation"] + metrics["n_test"] == len(GENERATED_CLASSES) * GENERATED_PER_CLASS
    assert metrics["image_size"] == 16 and metrics["chance_level"] == pytest.approx(1 / 3)
    assert all(metrics[n] >= len(GENERATED_CLASSES) for n in ("n_validation", "n_test")), "each part holds every class"
    assert process.stdout.strip().splitlines()[-1].startswith("result: ")


# ------------------------------------------------------------------------------------------------
# Bad input: one line, exit status 2, no traceback, earlier results kept
# ------------------------------------------------------------------------------------------------
# Each case: the arguments ({tmp}: the test's folder, see make_bad_data) and what the error line names.
BAD_INPUTS = {
    "negative epochs": (["--epochs", "-3"], "--epochs"),
    "non-numeric epochs": (["--epochs", "many"], "--epochs"),
    "zero batch size": (["--batch-size", "0"], "--batch-size"),
    "missing data folder": (["--data", "{tmp}/no_such_folder"], "no_such_folder"),
    "data that is a file": (["--data", "{tmp}/a_file"], "a_file"),
    "empty data folder": (["--data", "{tmp}/empty"], "at least 2"),
    "data with one class": (["--data", "{tmp}/one_class"], "at least 2"),
    "unknown option": (["--gpus", "2"], "--gpus"),
}


def make_bad_data(tmp: Path) -> None:
    (tmp / "a_file").write_text("not a folder\n")
    (tmp / "empty").mkdir()
    (tmp / "one_class" / "cats").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp / "one_class" / "cats" / "a.png")


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_digits_cnn_refuses_bad_input_with_one_line_and_keeps_earlier_results(case, tmp_path):
    make_bad_data(tmp_path)
    args, named = BAD_INPUTS[case]
    out = tmp_path / "earlier_results"
    out.mkdir()
    earlier = '{"test_accuracy": 0.99, "from": "an earlier run"}\n'
    (out / "metrics.json").write_text(earlier)
    process = run_example(*(arg.format(tmp=tmp_path) for arg in args), "--out", str(out))
    assert process.returncode == 2, succeeded(process)
    assert "Traceback" not in process.stderr
    error_lines = process.stderr.strip().splitlines()
    assert len(error_lines) == 1 and named in error_lines[0], process.stderr
    assert (out / "metrics.json").read_text() == earlier, "an earlier metrics.json was changed"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"], "the failed run left files behind"


def test_digits_cnn_refuses_an_out_folder_it_cannot_create(tmp_path):
    # Tests run as root, whom permissions do not stop; a folder under a regular file stops anyone.
    (tmp_path / "a_file").write_text("not a folder\n")
    process = run_example("--quick", "--out", str(tmp_path / "a_file" / "results"))
    assert process.returncode == 2, succeeded(process)
    assert "Traceback" not in process.stderr
    error_lines = process.stderr.strip().splitlines()
    assert len(error_lines) == 1 and "--out" in error_lines[0], process.stderr
    assert (tmp_path / "a_file").read_text() == "not a folder\n"


# ------------------------------------------------------------------------------------------------
# The GPU job file on the local Slurm: staging an archive to node-local /tmp, then training on it
# ------------------------------------------------------------------------------------------------
@pytest.mark.slurm
def test_digits_cnn_gpu_job_stages_the_archive_to_local_tmp_and_trains_on_it(slurm_cluster, tmp_path):
    from slurm_fixtures import JOB_TIMEOUT_S, QUICK_EXPORT, TEST_ACCOUNT, find_logs, scratch_copy

    from job_rules import JobFile

    # A small archive laid out like the fungi one: <top folder>/<class>/<images>.
    make_image_folder(tmp_path / "archive" / "shapes")
    archive = tmp_path / "shapes.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "archive" / "shapes", arcname="shapes")

    # The job file unchanged; only --account and --export on the command line, as on Puma.
    scratch = scratch_copy(tmp_path / "repo")
    export = f"{QUICK_EXPORT},DATA_ARCHIVE={archive},IMAGES_IN_ARCHIVE=shapes"
    relative = str(GPU_JOB_FILE.relative_to(REPO))
    result = slurm_cluster.run(
        "sbatch", "--wait", f"--account={TEST_ACCOUNT}", f"--export={export}", relative, cwd=scratch, timeout=JOB_TIMEOUT_S
    )
    output = result.stdout + result.stderr
    assert "Submitted batch job" in output, output
    job_id = int(output.split("Submitted batch job")[1].split()[0])
    job = JobFile.read(scratch / relative)
    logs = find_logs(job, job_id, scratch)
    assert len(logs) == 1, f"expected one log, found {sorted(logs)}\n{output}"
    log = next(iter(logs.values()))
    assert result.returncode == 0, f"the job ended with exit code {result.returncode}\n{log[-3000:]}"

    lines = log.strip().splitlines()
    assert lines[-1].startswith("result: test_accuracy="), log[-3000:]
    assert f"staged {archive} to " in log and "running on the CPU" in log, log[-3000:]
    metrics = json.loads((scratch / "results" / f"{job.job_name}_{job_id}" / "metrics.json").read_text())
    # It trained on the generated images, unpacked into a folder named after the job...
    assert metrics["classes"] == list(GENERATED_CLASSES), metrics["classes"]
    assert metrics["n_train"] + metrics["n_validation"] + metrics["n_test"] == len(GENERATED_CLASSES) * GENERATED_PER_CLASS
    staged = Path(metrics["data"])
    assert staged.name == "shapes" and f"_{job_id}_" in staged.parent.name, staged
    # ... and the job deleted that copy when it ended.
    assert not staged.parent.exists(), f"the job left its staged copy in {staged.parent}"
