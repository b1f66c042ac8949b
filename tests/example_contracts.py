"""The contract every example script keeps, as one table: one row per example.

tests/test_example_contract.py checks every row the same way:
- the quick run (`quick_args`) exits 0, ends with a `result:` line and writes every file in
  `writes` into --out, metrics.json with its "run" section;
- a second run with the same seed gives the same metrics (except those in `varying`: timings
  and speeds, which measure the machine): the example's notebook form where it has one and runs
  as the quick run does, else a second quick run;
- an explicit option beats --quick (`explicit`: the arguments, then the metrics key and the value
  it must have);
- every bad input (`bad_inputs`: the arguments, and a word the error line must name) gets one
  line on stderr and exit status 2, and leaves an earlier metrics.json in --out untouched;
- an --out that cannot be created is refused the same way.

`{tmp}` in an argument is the test's own folder, made ready by `prepare(tmp)` when a row has one.
The per-example test files check only that example's science; they reuse the quick run through
the `quick_run` fixture (conftest.py), so it runs once.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from conftest import REPO


@dataclass(frozen=True)
class Example:
    name: str
    writes: tuple[str, ...]
    explicit: tuple[tuple[str, ...], str, object]
    bad_inputs: dict[str, tuple[tuple[str, ...], str]]
    quick_args: tuple[str, ...] = ("--quick",)
    varying: tuple[str, ...] = ()
    prepare: Callable[[Path], None] | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def script(self) -> Path:
        return REPO / "examples" / f"{self.name}.py"


# sweep_gather gathers what the array tasks of a sweep wrote: a made-up sweep, {tmp}/sweep_array_7_<task>.
FAKE_SWEEP = "sweep_array_7"


def fake_sweep(tmp: Path, prefix: str = FAKE_SWEEP, skip: tuple[int, ...] = ()) -> None:
    """One metrics.json per row of examples/sweep_params.csv, as sweep_train writes them. Tasks 3
    and 5 share the best validation accuracy, and task 5 has the lower validation loss, so it is
    the one to choose; task 3 has the best test accuracy, which must play no part in the choice."""
    with open(REPO / "examples" / "sweep_params.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    made_up = {3: (0.97, 0.15, 0.99), 5: (0.97, 0.10, 0.95)}  # task: validation accuracy, loss, test accuracy
    for task, row in enumerate(rows, start=1):
        if task in skip:
            continue
        validation_accuracy, validation_loss, test_accuracy = made_up.get(task, (0.80 + task / 100, 0.5, 0.80))
        result = {"task": task, "learning_rate": float(row["learning_rate"]), "validation_loss": validation_loss,
                  "validation_accuracy": validation_accuracy, "test_accuracy": test_accuracy, "settings_row": row}  # fmt: skip
        (tmp / f"{prefix}_{task}").mkdir(exist_ok=True)
        (tmp / f"{prefix}_{task}" / "metrics.json").write_text(json.dumps(result))


def prepare_sweep_gather(tmp: Path) -> None:
    fake_sweep(tmp)
    fake_sweep(tmp, "incomplete", skip=(2,))
    lines = (REPO / "examples" / "sweep_params.csv").read_text().splitlines()
    (tmp / "first_three.csv").write_text("\n".join(lines[:4]) + "\n")
    (tmp / "edited_after_the_sweep.csv").write_text("\n".join([*lines[:3], "0.5", *lines[4:]]) + "\n")


def prepare_sweep_train(tmp: Path) -> None:
    (tmp / "bad_row.csv").write_text("learning_rate\n0.001\nfast\n")


def prepare_recommender(tmp: Path) -> None:
    """MovieLens ratings.csv files that --data must refuse, each with one fault."""
    header, good = "userId,movieId,rating,timestamp", ["1,10,4.0,964982703", "1,20,3.5,964982224", "2,10,5.0,964983815"]
    faults = {
        "wrong_header.csv": ["user,movie,stars,time", *good],
        "rating_not_a_number.csv": [header, *good, "2,30,four,964982931"],
        "extra_field.csv": [header, *good, "3,10,2.5,964982400", "3,20,1.0,964982400,oops"],
        "rated_twice.csv": [header, *good, "1,20,2.0,964984000"],
    }
    for name, lines in faults.items():
        (tmp / name).write_text("\n".join(lines) + "\n")


def prepare_poetry(tmp: Path) -> None:
    """Text files that --data must refuse: empty, not text, too few poems to split in three."""
    (tmp / "empty.txt").write_text("")
    (tmp / "latin1.txt").write_bytes("Caf\xe9 au lait,\nun po\xe8me\n".encode("latin-1"))
    (tmp / "nine_poems.txt").write_text("%\n".join(f"Poem {number}\nends here\n" for number in range(9)))


def prepare_fine_tuning(tmp: Path) -> None:
    """Folders of images that --data must refuse (one class; a file that is not an image), a good
    folder, and checkpoints that --weights must refuse: one of another network (missing and extra
    keys), and one named like torchvision's file whose bytes are not that file's."""
    import torch
    from PIL import Image

    for folder in ("one_class/cats", "corrupt/cats", "corrupt/dogs", "images/cats", "images/dogs"):
        (tmp / folder).mkdir(parents=True, exist_ok=True)
        for number in range(3):
            Image.new("RGB", (8, 8), (40 * number, 0, 0)).save(tmp / folder / f"{number}.png")
    (tmp / "corrupt" / "dogs" / "broken.png").write_text("not an image\n")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "classifier.weight": torch.zeros(2, 512)}, tmp / "another_network.pth")
    (tmp / "resnet18-f37072fd.pth").write_bytes(b"an interrupted download\n")


EXAMPLES = [
    # Each row is kept by the person who changes that example.
    Example(
        name="sweep_train",
        writes=("metrics.json",),
        explicit=(("--epochs", "1"), "epochs", 1),
        bad_inputs={
            "epochs_not_a_number": (("--epochs", "two"), "--epochs"),
            "task_zero": (("--task", "0"), "--task"),
            "task_past_the_end_of_the_file": (("--task", "99"), "--array=1-"),
            "missing_settings_file": (("--params", "{tmp}/missing.csv"), "cannot read --params"),
            "learning_rate_not_a_number": (("--params", "{tmp}/bad_row.csv", "--task", "2"), "column learning_rate"),
        },
        prepare=prepare_sweep_train,
        environment={"SLURM_ARRAY_TASK_ID": "3"},  # as Slurm starts task 3 of the array
    ),
    Example(
        name="sweep_gather",
        writes=("metrics.json", "sweep_table.csv", "sweep.png"),
        quick_args=("--quick", "--tasks", "{tmp}/" + FAKE_SWEEP),
        explicit=(("--params", "{tmp}/first_three.csv"), "points", 3),
        bad_inputs={
            "misspelt_option": (("--task", "{tmp}/" + FAKE_SWEEP), "unrecognized arguments"),
            "missing_settings_file": (("--params", "{tmp}/missing.csv"), "cannot read --params"),
            "a_task_without_results": (("--tasks", "{tmp}/incomplete"), "task(s) 2 of"),
            "settings_file_edited_after_the_sweep": (("--params", "{tmp}/edited_after_the_sweep.csv"), "task(s) 3 of"),
        },
        prepare=prepare_sweep_gather,
    ),
    Example(
        name="ddp_train",
        writes=("metrics.json",),
        explicit=(("--epochs", "2"), "epochs", 2),
        bad_inputs={
            "epochs_not_a_number": (("--epochs", "many"), "--epochs"),
            "the_old_option_name": (("--lr", "0.1"), "unrecognized arguments"),
            "learning_rate_zero": (("--learning-rate", "0"), "--learning-rate"),
            "batch_larger_than_the_training_set": (("--batch-size", "5000"), "training images"),
        },
        varying=("train_images_per_s", "train_seconds"),
    ),
    Example(
        name="penguin_species",
        writes=("metrics.json", "features.png", "confusion_matrix.png"),
        explicit=(("--folds", "4"), "folds", 4),
        bad_inputs={
            "folds_not_a_number": (("--folds", "many"), "--folds"),
            "one_fold": (("--folds", "1"), "--folds"),
            "more_folds_than_the_rarest_species_has_penguins": (("--folds", "60"), "--folds"),
            "unknown_option": (("--epochs", "3"), "unrecognized arguments"),
        },
    ),
    Example(
        name="penguin_clustering",
        writes=("metrics.json", "clusters.png", "bandwidth.png"),
        explicit=(("--iterations", "20"), "max_iterations", 20),
        bad_inputs={
            "bandwidth_not_a_number": (("--bandwidth", "wide"), "--bandwidth"),
            "zero_iterations": (("--iterations", "0"), "--iterations"),
            "more_clusters_than_points": (("--clusters", "400"), "--clusters"),
            "chunk_smaller_than_one_row_of_kernel_weights": (("--chunk-mb", "0.001"), "--chunk-mb"),
            "unknown_option": (("--epochs", "3"), "unrecognized arguments"),
        },
        varying=("mean_shift_seconds", "mean_shift_ms_per_step"),
    ),
    Example(
        name="thread_scaling",
        writes=("metrics.json", "thread_scaling.png"),
        explicit=(("--repeats", "2"), "repeats", 2),
        bad_inputs={
            "zero_steps": (("--steps", "0"), "--steps"),
            "repeats_not_a_number": (("--repeats", "few"), "--repeats"),
            "batch_larger_than_the_training_images": (("--batch-size", "5000"), "--batch-size"),
            "unknown_option": (("--threads", "4"), "unrecognized arguments"),
        },
        varying=(
            "load_average_at_start",
            "table",
            "largest_spread",
            "images_per_s_1_thread",
            "images_per_s_allocation",
            "efficiency_at_allocation",
            "oversubscribed_relative_speed",
        ),
    ),
    Example(
        name="checkpoint_requeue",
        writes=("metrics.json", "checkpoint.pt", "training_history.png"),
        explicit=(("--epochs", "1"), "epochs", 1),
        bad_inputs={
            "zero_epochs": (("--epochs", "0"), "--epochs"),
            "learning_rate_not_a_number": (("--lr", "fast"), "--lr"),
            "negative_learning_rate": (("--lr", "-0.1"), "--lr"),
            "misspelt_option": (("--epoch", "3"), "unrecognized arguments"),
        },
        varying=("timing",),
    ),
    Example(
        name="hello_gpu",
        writes=("metrics.json",),
        explicit=(("--size", "64"), "size", 64),
        bad_inputs={
            "zero_size": (("--size", "0"), "--size"),
            "repeats_not_a_number": (("--repeats", "many"), "--repeats"),
            "unknown_option": (("--gpus", "2"), "unrecognized arguments"),
        },
        varying=("seconds_per_product", "gflops"),
    ),
    Example(
        name="digits_cnn",
        writes=("metrics.json", "confusion_matrix.png", "training_curves.png"),
        explicit=(("--epochs", "1"), "epochs", 1),
        bad_inputs={
            "zero_epochs": (("--epochs", "0"), "--epochs"),
            "learning_rate_not_a_number": (("--learning-rate", "nan"), "--learning-rate"),
            "unknown_option": (("--gpus", "2"), "unrecognized arguments"),
            "the_option_moved_to_fine_tuning": (("--data", "{tmp}"), "unrecognized arguments"),
        },
    ),
    Example(
        name="confident_wrong_biased",
        writes=("metrics.json", "confidence.png", "reliability.png", "shortcut.png"),
        explicit=(("--epochs", "3"), "epochs", 3),
        bad_inputs={
            "epochs_not_a_number": (("--epochs", "ten"), "--epochs"),
            "fewer_training_digits_than_classes": (("--train-images", "5"), "--train-images"),
            "more_training_digits_than_the_training_part": (("--train-images", "5000"), "--train-images"),
            "unknown_option": (("--folds", "3"), "unrecognized arguments"),
        },
    ),
    Example(
        name="digits_diffusion",
        writes=("metrics.json", "metrics_table.csv", "generated_digits.npz", "samples.png", "reverse_process.png", "guidance.png"),
        explicit=(("--train-steps", "3"), "train_steps", 3),
        bad_inputs={
            "fewer_samples_than_digits": (("--samples", "5"), "--samples"),
            "an_image_size_not_offered": (("--image-size", "12"), "--image-size"),
            "negative_guidance": (("--guidance", "-1"), "--guidance"),
            "a_single_noise_step": (("--noise-steps", "1"), "--noise-steps"),
            "unknown_option": (("--epochs", "3"), "unrecognized arguments"),
        },
    ),
    Example(
        name="burgers_pinn",
        writes=("metrics.json", "prediction.npz", "solution.png", "slices.png", "error.png", "training.png"),
        # Adam steps only: metrics.json records the steps made, which then are exactly --adam-steps.
        explicit=(("--adam-steps", "7", "--lbfgs-steps", "0"), "steps", 7),
        bad_inputs={
            "width_not_a_number": (("--width", "wide"), "--width"),
            "zero_points": (("--points", "0"), "--points"),
            "unknown_constraint": (("--constraint", "medium"), "--constraint"),
            "the_removed_float64_option": (("--float64-steps", "100"), "unrecognized arguments"),
            "more_data_points_than_there_are": (("--constraint", "soft", "--data-points", "500"), "--data-points"),
        },
        varying=("train_time_s", "time_to_error_1e-3_s", "history"),  # history: each row has its time
    ),
    Example(
        name="self_play",
        writes=("metrics.json", "positions.jsonl", "training.png", "policy_value.png", "game.png"),
        explicit=(("--iterations", "2"), "iterations", 2),
        bad_inputs={
            "unknown_game": (("--game", "chekers"), "--game"),
            "board_too_small_to_win_on": (("--game", "connect_four(rows=3,columns=3)"), "--game"),
            "zero_simulations": (("--simulations", "0"), "--simulations"),
            "bot_budget_not_a_number": (("--bot-simulations", "10", "many"), "--bot-simulations"),
        },
        varying=("simulations_per_core_second", "chess_core_hours", "solve_seconds"),
    ),
    Example(
        name="recommender",
        writes=("metrics.json", "predictions.csv", "data.png", "learning_curves.png", "rmse_by_activity.png",
                "popularity_vs_recommended.png", "item_embeddings.png"),  # fmt: skip
        explicit=(("--epochs", "2"), "epochs", 2),
        bad_inputs={
            "factors_zero": (("--factors", "0"), "--factors"),
            "noise_not_a_number": (("--noise", "loud"), "--noise"),
            "misspelt_option": (("--epoch", "3"), "unrecognized arguments"),
            "data_file_missing": (("--data", "{tmp}/no_such_ratings.csv"), "no_such_ratings.csv"),
            "data_with_the_wrong_header": (("--data", "{tmp}/wrong_header.csv"), "header"),
            "data_rating_not_a_number": (("--data", "{tmp}/rating_not_a_number.csv"), "line 5: rating 'four'"),
            "data_line_with_an_extra_field": (("--data", "{tmp}/extra_field.csv"), "line 6"),
            "data_rating_the_same_movie_twice": (("--data", "{tmp}/rated_twice.csv"), "line 5"),
        },
        prepare=prepare_recommender,
        varying=("timing",),
    ),
    Example(
        name="poetry",
        writes=("metrics.json", "split.json", "samples.txt", "held_out_passages.txt", "learning_curves.png", "attention.png"),
        explicit=(("--steps", "5"), "steps", 5),
        bad_inputs={
            "steps_zero": (("--steps", "0"), "--steps"),
            "two_temperatures_instead_of_three": (("--temperatures", "0.5", "1.0"), "--temperatures"),
            "unknown_size": (("--size", "huge"), "--size"),
            "misspelt_option": (("--step", "3"), "unrecognized arguments"),
            "data_file_missing": (("--data", "{tmp}/no_such_poems.txt"), "no_such_poems.txt"),
            "data_file_empty": (("--data", "{tmp}/empty.txt"), "is empty"),
            "data_not_utf8_text": (("--data", "{tmp}/latin1.txt"), "not UTF-8"),
            "data_with_too_few_poems": (("--data", "{tmp}/nine_poems.txt"), "at least 10"),
        },
        prepare=prepare_poetry,
    ),
    Example(
        name="fine_tuning",
        writes=("metrics.json", "pretrained_digits_0-4.pt", "accuracy_vs_labels.png", "training_pictures.png"),
        explicit=(("--steps", "3"), "steps", 3),
        bad_inputs={
            "zero_labels": (("--labels", "0"), "--labels"),
            "more_labels_than_the_rarest_digit_has": (("--labels", "5", "500"), "--labels 500"),
            "weights_without_data": (("--weights", "{tmp}/another_network.pth"), "--weights is for --data"),
            "data_folder_missing": (("--data", "{tmp}/no_such_folder"), "no_such_folder"),
            "data_with_one_class": (("--data", "{tmp}/one_class"), "at least 2"),
            "data_with_a_broken_image": (("--data", "{tmp}/corrupt"), "broken.png"),
            "checkpoint_missing": (("--data", "{tmp}/images", "--weights", "{tmp}/models/resnet18.pth"), "curl"),
            "checkpoint_of_another_network": (("--data", "{tmp}/images", "--weights", "{tmp}/another_network.pth"), "classifier.weight"),
            "checkpoint_damaged": (("--data", "{tmp}/images", "--weights", "{tmp}/resnet18-f37072fd.pth"), "SHA-256"),
            "unknown_option": (("--epoch", "3"), "unrecognized arguments"),
        },
        prepare=prepare_fine_tuning,
    ),
]

BY_NAME = {example.name: example for example in EXAMPLES}
