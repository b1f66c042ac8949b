"""examples/confident_wrong_biased.py: in quick mode the classifier is overconfident and temperature
scaling (fitted on validation data) makes it better calibrated on the test set; it is sure of
itself on random noise; the model trained with a planted shortcut fails without it while the
clean model does not; the same seed gives the same numbers; bad input gets one line and exit
status 2, leaving earlier results alone. Also the expected calibration error on cases worked
out by hand.

Each run is a subprocess with one thread (SLURM_CPUS_PER_TASK=1): the tests share two cores.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, assert_refused_in_one_line, run_script, unwritable_folder

SCRIPT = REPO / "examples" / "confident_wrong_biased.py"
sys.path.insert(0, str(SCRIPT.parent))
from confident_wrong_biased import calibration_bins, expected_calibration_error  # noqa: E402


def run_example(*args: str) -> subprocess.CompletedProcess:
    return run_script(SCRIPT, *args)


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Two quick runs with the same seed: (process, metrics, out folder) for each."""
    runs = []
    for attempt in ("first", "second"):
        out = tmp_path_factory.mktemp(f"confident_wrong_biased_{attempt}")
        process = run_example("--quick", "--seed", "0", "--out", str(out))
        assert process.returncode == 0, f"quick run failed:\n{process.stdout[-2000:]}\n{process.stderr[-2000:]}"
        runs.append((process, json.loads((out / "metrics.json").read_text()), out))
    return runs


# ------------------------------------------------------------------------------------------------
# The expected calibration error, by hand
# ------------------------------------------------------------------------------------------------
def answers(confidences: list[float], right: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities for 10 classes whose top class (0) has the given confidence, and labels
    that make each answer right or wrong as asked."""
    probs = np.array([[c] + [(1 - c) / 9] * 9 for c in confidences])
    labels = np.array([0 if ok else 1 for ok in right])
    return probs, labels


def test_ece_is_the_count_weighted_gap_between_accuracy_and_confidence_per_bin():
    # Bin (14/15, 1]: four answers 95% sure, three right: |0.75 - 0.95| = 0.20, weight 4/8.
    # Bin (8/15, 9/15]: four answers 55% sure, two right: |0.50 - 0.55| = 0.05, weight 4/8.
    # ECE = 0.5 * 0.20 + 0.5 * 0.05 = 0.125.
    probs, labels = answers([0.95] * 4 + [0.55] * 4, [True, True, True, False, True, True, False, False])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.125)
    counts, confidence, accuracy = calibration_bins(probs, labels)
    assert len(counts) == 15 and counts[14] == 4 and counts[8] == 4 and counts.sum() == 8
    assert confidence[14] == pytest.approx(0.95) and accuracy[14] == pytest.approx(0.75)
    assert np.isnan(accuracy[0]), "an empty bin has no accuracy"


def test_ece_is_zero_when_confidence_matches_accuracy_and_one_when_sure_and_always_wrong():
    calibrated, labels = answers([0.75] * 4, [True, True, True, False])
    assert expected_calibration_error(calibrated, labels) == pytest.approx(0.0)
    sure_and_wrong, labels = answers([1.0] * 5, [False] * 5)
    assert expected_calibration_error(sure_and_wrong, labels) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------
# (a) Confident nonsense and calibration
# ------------------------------------------------------------------------------------------------
def test_overconfident_classifier_is_better_calibrated_on_the_test_set_after_temperature_scaling(quick_runs):
    # Over seeds 0-7 in quick mode: T 1.40-1.85, test ECE 3.5-6.0% before and 1.6-3.4% after,
    # test NLL lower after in every seed. The temperature is fitted on the validation set only.
    _, metrics, _ = quick_runs[0]
    assert metrics["train_accuracy"] == 1.0, "the classifier should fit its training set perfectly"
    assert metrics["mean_confidence"]["real_digits"] > metrics["test_accuracy"], "it should be overconfident"
    assert metrics["temperature"] > 1, "an overconfident model needs T > 1 to soften its answers"
    assert metrics["ece_after"] < metrics["ece_before"]
    assert metrics["nll_after"] < metrics["nll_before"]
    assert metrics["test_accuracy"] >= 0.8, "100 training digits still give far better than the 10% of guessing"


def test_classifier_is_sure_of_itself_on_random_noise_and_shuffled_pixels(quick_runs):
    # "I do not know" would be 10% on each class. Seeds 0-7 gave a mean confidence of 69-85% on
    # noise and 70-76% on shuffled pixels.
    _, metrics, _ = quick_runs[0]
    for kind in ("random_noise", "shuffled_pixels"):
        assert metrics["mean_confidence"][kind] >= 0.5, f"{kind}: {metrics['mean_confidence'][kind]:.1%}"
        assert metrics["mean_confidence_after_scaling"][kind] >= 0.4, "temperature scaling does not cure this"


# ------------------------------------------------------------------------------------------------
# (b) The planted shortcut
# ------------------------------------------------------------------------------------------------
def test_shortcut_model_fails_without_its_shortcut_while_the_clean_model_does_not(quick_runs):
    # Seeds 0-7: the shortcut model lost 21-34 points without the tag and 70-85 points with the
    # tag at a random column; the clean model moved by at most 1.6 points either way.
    _, metrics, _ = quick_runs[0]
    shortcut, clean = metrics["shortcut_model"], metrics["clean_model"]
    assert shortcut["validation_accuracy"] >= 0.95, "validation data with the same tag should hide the problem"
    assert shortcut["test_accuracy_tag"] >= 0.95
    assert metrics["shortcut_drop_without_tag"] >= 0.10
    assert metrics["shortcut_drop_random_tag"] >= 0.50
    assert abs(metrics["clean_drop_without_tag"]) <= 0.03
    assert abs(metrics["clean_drop_random_tag"]) <= 0.03
    assert clean["test_accuracy_none"] >= 0.8


# ------------------------------------------------------------------------------------------------
# The run itself
# ------------------------------------------------------------------------------------------------
def test_confident_wrong_biased_writes_figures_and_progress_and_ends_with_the_result_line(quick_runs):
    process, metrics, out = quick_runs[0]
    lines = process.stdout.strip().splitlines()
    assert lines[-1].startswith("result: test_accuracy="), process.stdout[-500:]
    for figure in ("confidence.png", "reliability.png", "shortcut.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure} is not a PNG"
    epochs = metrics["epochs"]
    for model in ("classifier", "shortcut model", "clean model"):
        progress = [line for line in lines if line.startswith(f"{model}: epoch ")]
        assert len(progress) == epochs, f"{model}: expected one progress line per epoch, got {len(progress)}"
        assert "left" in progress[-1] and "images/s" in progress[-1]
    assert any(line.startswith("device: cpu") for line in lines), "the run should say which device it uses"
    assert metrics["run"]["threads"] == 1, "the run should use the one CPU SLURM_CPUS_PER_TASK gave it"


def test_confident_wrong_biased_same_seed_gives_the_same_metrics(quick_runs):
    (_, first, _), (_, second, _) = quick_runs
    first, second = dict(first), dict(second)
    first.pop("run"), second.pop("run")
    assert first == second


BAD_INPUTS = {
    "negative_epochs": (["--epochs", "-3"], "--epochs"),
    "non_numeric_epochs": (["--epochs", "ten"], "--epochs"),
    "zero_batch_size": (["--batch-size", "0"], "--batch-size"),
    "non_numeric_train_images": (["--train-images", "1e2"], "--train-images"),
    "too_many_train_images": (["--train-images", "5000"], "--train-images"),
    "too_few_train_images": (["--train-images", "5"], "--train-images"),
    "unknown_option": (["--folds", "3"], "unrecognized arguments"),
}


@pytest.mark.parametrize("args, named", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_confident_wrong_biased_refuses_bad_input_with_one_line_and_exit_status_2(args, named, tmp_path):
    process = run_example("--quick", "--out", str(tmp_path), *args)
    assert_refused_in_one_line(process, named)


def test_confident_wrong_biased_refuses_an_out_folder_it_cannot_create(tmp_path):
    process = run_example("--quick", "--out", str(unwritable_folder(tmp_path)))
    assert_refused_in_one_line(process, "cannot write to --out")


def test_confident_wrong_biased_failing_run_leaves_earlier_results_untouched(tmp_path):
    earlier = '{"ece_before": 0.05, "from": "an earlier run"}\n'
    (tmp_path / "metrics.json").write_text(earlier)
    # Too many training digits is found only once the data are loaded, the latest point a run can fail.
    process = run_example("--quick", "--out", str(tmp_path), "--train-images", "5000")
    assert process.returncode == 2, process.stderr
    assert (tmp_path / "metrics.json").read_text() == earlier
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json"], "the failed run left files behind"
