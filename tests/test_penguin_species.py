"""examples/penguin_species.py, its science: the model chosen by cross-validation on the training
part tells the species of held-out penguins far better than always guessing the most common one,
and the gaps in the data are handled in the open. The run itself (results written, same seed, bad
input) is checked by test_example_contract.py; this file reuses its quick run."""

import pytest


@pytest.fixture(scope="module")
def run(quick_run):
    return quick_run("penguin_species")


def test_held_out_accuracy_beats_the_majority_baseline_by_far(run):
    # Quick mode scored 97.7-100% on the held-out penguins over seeds 0-7 (both models); always
    # guessing the most common species (Adelie) scores 44%. A floor of 90% leaves room for an
    # unlucky seed, and no guess comes near it.
    baseline = run.metrics["baseline_accuracy"]
    assert 0.3 < baseline < 0.5, f"the majority baseline should be about 44% (Adelie), not {baseline:.1%}"
    for model, accuracy in run.metrics["test_accuracy_by_model"].items():
        assert accuracy >= 0.90, f"{model} got {accuracy:.1%} of the held-out penguins right, below the floor of 90%"
        assert accuracy - baseline >= 0.4, f"{model} ({accuracy:.1%}) is not far above the baseline ({baseline:.1%})"


def test_cross_validation_scores_only_the_training_penguins_and_picks_the_model(run):
    metrics = run.metrics
    measured = metrics["n_penguins"] - metrics["rows_dropped_no_measurements"]
    assert metrics["n_train"] + metrics["n_test"] == measured, "the train and test parts should hold every measured penguin"
    assert 0.2 < metrics["n_test"] / measured < 0.3, "about a quarter of the penguins should be held out"
    for model, scored in metrics["cv_penguins_scored"].items():
        assert scored == metrics["n_train"], f"cross-validation of {model} scored {scored} penguins, not the {metrics['n_train']} of the training part"
    cv_means = metrics["cv_accuracy_mean"]
    assert cv_means[metrics["chosen_model"]] == max(cv_means.values()), "the chosen model is not the one with the best cross-validation"


def test_the_gaps_in_the_data_are_counted_and_handled_in_the_open(run):
    assert run.metrics["missing_values"]["sex"] == 11 and run.metrics["missing_values"]["bill_length_mm"] == 2
    assert "dropped 2 penguins with no measurements at all (rows 3, 271); 342 remain" in run.process.stdout
    assert "sex: 9 of the remaining 342 penguins have none recorded" in run.process.stdout


def test_threads_come_from_the_allocation(run):
    # The tests run with SLURM_CPUS_PER_TASK=1: one thread, whatever the machine has.
    assert run.metrics["run"]["threads"] == 1, "the run should use the one CPU SLURM_CPUS_PER_TASK gave it"
    assert "threads: 1 (BLAS and OpenMP capped by threadpoolctl" in run.process.stdout
