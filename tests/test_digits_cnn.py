"""examples/digits_cnn.py: quick training takes the CNN from guessing to reading digits. The run's
contract (options, refusals, same seed) is checked for every example in test_example_contract.py,
its job files in test_job_files.py. (A folder of your own images, and the GPU job that stages
one: examples/fine_tuning.py, tests/test_fine_tuning.py.)"""


def test_digits_cnn_beats_guessing_by_far_after_quick_training(quick_run):
    # Guessing scores 10%; quick mode (2 epochs) scored 98% on the 360 test digits with seed 0 (97-99% with seeds 0-2).
    # The floor of 90% leaves room for another seed or machine, and no guess comes near it.
    metrics = quick_run("digits_cnn").metrics
    assert metrics["n_test"] == 360, "the test digits are digits.py's test part"
    assert metrics["test_accuracy"] >= 0.90, f"test accuracy {metrics['test_accuracy']:.1%} is below the floor of 90%"
    worst = min(metrics["per_class_accuracy"], key=metrics["per_class_accuracy"].get)
    assert metrics["per_class_accuracy"][worst] >= 0.5, f"the digit {worst} is mostly missed: {metrics['per_class_accuracy']}"


def test_digits_cnn_is_no_better_than_guessing_before_training(quick_run):
    metrics = quick_run("digits_cnn").metrics
    assert abs(metrics["accuracy_before"] - 0.1) <= 0.1, (
        f"before training the model scored {metrics['accuracy_before']:.1%}, far from the 10% of guessing"
    )


def test_digits_cnn_log_says_before_and_after_and_that_digits_in_memory_need_no_loader_workers(quick_run):
    run = quick_run("digits_cnn")
    lines = run.process.stdout.splitlines()
    assert any(line.startswith("test accuracy before training:") for line in lines), "the log does not give the accuracy before training"
    assert any(line.startswith("test accuracy after training:") for line in lines), "the log does not give the accuracy after training"
    assert sum(line.startswith("epoch ") for line in lines) == run.metrics["epochs"], "the log does not have one line per epoch"
    assert "threads: 1 torch + 0 loader workers = 1 CPUs" in run.process.stdout, "digits in memory should get no loader workers"
