"""examples/penguin_species.py: quick mode learns the species far better than the majority-class
guess, handles the missing values in the open, gives the same numbers for the same seed, and
refuses bad input with one line and exit status 2, leaving earlier results alone.

Each run is a subprocess with one thread (SLURM_CPUS_PER_TASK=1): the tests share two cores.
"""

import json
import subprocess

import pytest

from conftest import REPO, assert_refused_in_one_line, run_script, unwritable_folder

SCRIPT = REPO / "examples" / "penguin_species.py"
MEASURED_PENGUINS = 342  # 344 in the data set, 2 of them without any measurement


def run_example(*args: str) -> subprocess.CompletedProcess:
    return run_script(SCRIPT, *args)


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Two quick runs with the same seed: (process, metrics, out folder) for each."""
    runs = []
    for attempt in ("first", "second"):
        out = tmp_path_factory.mktemp(f"penguin_species_{attempt}")
        process = run_example("--quick", "--seed", "0", "--out", str(out))
        assert process.returncode == 0, f"quick run failed:\n{process.stdout[-2000:]}\n{process.stderr[-2000:]}"
        runs.append((process, json.loads((out / "metrics.json").read_text()), out))
    return runs


def test_penguin_species_beats_majority_baseline_by_a_wide_margin_in_quick_mode(quick_runs):
    # Quick mode scored 97.7-100% on the held-out penguins over seeds 0-7 (both models); always
    # guessing the most common species scores 44%. The floor of 90% leaves room for a bad seed,
    # and no guess comes near it.
    _, metrics, _ = quick_runs[0]
    baseline = metrics["baseline_accuracy"]
    assert 0.3 < baseline < 0.5, f"the majority-class baseline should be about 44% (Adelie), not {baseline:.1%}"
    for model, accuracy in metrics["test_accuracy_by_model"].items():
        assert accuracy >= 0.90, f"{model}: held-out accuracy {accuracy:.1%} is below the floor of 90%"
        assert accuracy - baseline >= 0.4, f"{model}: {accuracy:.1%} is not far above the baseline {baseline:.1%}"
    assert metrics["test_accuracy"] == metrics["test_accuracy_by_model"][metrics["chosen_model"]]


def test_penguin_species_model_is_chosen_by_cross_validation_on_the_training_part_only(quick_runs):
    _, metrics, _ = quick_runs[0]
    cv_means = metrics["cv_accuracy_mean"]
    assert set(cv_means) == {"logistic_regression", "random_forest"}
    assert cv_means[metrics["chosen_model"]] == max(cv_means.values())
    assert all(len(folds) == metrics["folds"] for folds in metrics["cv_accuracy_folds"].values())
    assert metrics["n_train"] + metrics["n_test"] == MEASURED_PENGUINS
    assert 0.2 < metrics["n_test"] / MEASURED_PENGUINS < 0.3, "a quarter of the penguins should be held out"


def test_penguin_species_reports_missing_values_and_what_it_did_about_them(quick_runs):
    process, metrics, _ = quick_runs[0]
    assert metrics["missing_values"]["bill_length_mm"] == 2
    assert metrics["missing_values"]["sex"] == 11
    assert metrics["rows_dropped_no_measurements"] == 2
    assert metrics["sex_imputed"] == 9
    assert "dropped 2 penguins with no measurements at all" in process.stdout
    assert "sex: 9 of the remaining 342 penguins have none recorded" in process.stdout


def test_penguin_species_writes_figures_metrics_and_ends_with_the_result_line(quick_runs):
    process, metrics, out = quick_runs[0]
    assert process.stdout.strip().splitlines()[-1].startswith("result: model="), process.stdout[-500:]
    for figure in ("features.png", "confusion_matrix.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure} is not a PNG"
    assert metrics["run"]["threads"] == 1, "the run should use the one CPU SLURM_CPUS_PER_TASK gave it"
    assert "fold 3/3" in process.stdout, "cross-validation should print one progress line per fold"


def test_penguin_species_same_seed_gives_the_same_metrics(quick_runs):
    (_, first, _), (_, second, _) = quick_runs
    first.pop("run"), second.pop("run")
    assert first == second


BAD_INPUTS = {
    "negative_folds": (["--folds", "-1"], "--folds"),
    "non_numeric_folds": (["--folds", "many"], "--folds"),
    "one_fold": (["--folds", "1"], "--folds"),
    "more_folds_than_penguins_of_a_species": (["--folds", "60"], "--folds"),
    "zero_trees": (["--trees", "0"], "--trees"),
    "non_numeric_trees": (["--trees", "1e2"], "--trees"),
    "unknown_option": (["--epochs", "3"], "unrecognized arguments"),
}


@pytest.mark.parametrize("args, named", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_penguin_species_refuses_bad_input_with_one_line_and_exit_status_2(args, named, tmp_path):
    process = run_example("--quick", "--out", str(tmp_path), *args)
    assert_refused_in_one_line(process, named)


def test_penguin_species_refuses_an_out_folder_it_cannot_create(tmp_path):
    process = run_example("--quick", "--out", str(unwritable_folder(tmp_path)))
    assert_refused_in_one_line(process, "cannot write to --out")


def test_penguin_species_failing_run_leaves_earlier_results_untouched(tmp_path):
    earlier = '{"test_accuracy": 0.99, "from": "an earlier run"}\n'
    (tmp_path / "metrics.json").write_text(earlier)
    # This mistake is found only after the data are loaded and split, the latest point a run can fail.
    process = run_example("--quick", "--out", str(tmp_path), "--folds", "60")
    assert process.returncode == 2, process.stderr
    assert (tmp_path / "metrics.json").read_text() == earlier
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json"], "the failed run left files behind"
