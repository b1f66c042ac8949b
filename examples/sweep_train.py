"""One point of a hyperparameter sweep: train a small digits classifier with one row of settings.

A sweep trains the same model many times, each time with other settings (here the learning rate
and the width of the hidden layer), and keeps the setting that does best on data held out for
that purpose: the *validation* part. The *test* part is touched only to report how the chosen
setting does on images no choice has seen.

On Puma every point is one task of a Slurm job array (slurm/sweep_array.sbatch). Each task gets
its own SLURM_ARRAY_TASK_ID, reads that row of the parameter file, and writes its own
metrics.json; a second job (examples/sweep_gather.py) collects them once all have finished.
"""

import csv
import os
import time
from pathlib import Path

import torch
from torch import nn

import workshop


def main() -> None:
    parser = workshop.make_parser(__doc__, default_out="results/sweep_train")
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("examples/sweep_params.csv"),
        help="CSV file with one setting per row: learning_rate,hidden (default: examples/sweep_params.csv)",
    )
    parser.add_argument(
        "--task",
        type=workshop.positive_int,
        default=None,
        help="which row of --params to train, 1 = the first row under the header "
        "(default: $SLURM_ARRAY_TASK_ID, or 1 outside a job array)",
    )
    parser.add_argument(
        "--epochs", type=workshop.positive_int, default=40, help="passes over the training images (default: 40; 5 with --quick)"
    )
    args = workshop.parse_args(parser)
    started = time.perf_counter()

    task = args.task or task_from_job_array()
    settings = read_settings(args.params, task)
    workshop.log(f"task {task}: learning_rate {settings['learning_rate']:g}, hidden {settings['hidden']}")
    epochs = 5 if args.quick else args.epochs
    threads = workshop.use_allocated_threads()
    workshop.seed_everything(args.seed)

    # Every task splits the digits the same way (same --seed): the settings are the only difference.
    data = {name: to_tensors(part) for name, part in workshop.digits_splits(args.seed).items()}
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, settings["hidden"]), nn.ReLU(), nn.Linear(settings["hidden"], 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"])

    progress = workshop.Progress(total=epochs, unit="images")
    for epoch in range(1, epochs + 1):
        train_loss = train_one_epoch(model, optimizer, *data["train"], batch_size=32)
        validation_loss, validation_accuracy = evaluate(model, *data["validation"])
        progress.step(epoch, items=len(data["train"][1]), loss=train_loss, val_accuracy=validation_accuracy)

    test_loss, test_accuracy = evaluate(model, *data["test"])
    metrics = {
        "task": task,
        **settings,
        "epochs": epochs,
        "train_loss": train_loss,
        "validation_loss": validation_loss,
        "validation_accuracy": validation_accuracy,
        "test_accuracy": test_accuracy,
        "sizes": {name: len(labels) for name, (_, labels) in data.items()},
    }
    workshop.write_metrics(args.out, metrics, workshop.run_info(started, device="cpu", threads=threads))
    workshop.report_result(task=task, **settings, val_accuracy=validation_accuracy, test_accuracy=test_accuracy)


def task_from_job_array() -> int:
    """The row this array task trains: SLURM_ARRAY_TASK_ID, or the first row outside an array."""
    value = os.environ.get("SLURM_ARRAY_TASK_ID")
    if value is None:
        workshop.log("task: 1 (SLURM_ARRAY_TASK_ID is not set: not a job array task; --task N picks another row)")
        return 1
    if not value.isdigit() or int(value) < 1:
        raise workshop.UsageError(f"SLURM_ARRAY_TASK_ID={value} is not a row number; use --array=1-N (rows count from 1)")
    return int(value)


def read_settings(path: Path, task: int) -> dict:
    """Row `task` (1 = first under the header) of the parameter file, with numbers as numbers."""
    try:
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
    except OSError as error:
        raise workshop.UsageError(f"cannot read --params {path}: {error.strerror}") from None
    if task > len(rows):
        raise workshop.UsageError(
            f"task {task} is past the end of {path} ({len(rows)} settings): make --array=1-{len(rows)} match the file"
        )
    row = rows[task - 1]
    try:
        return {"learning_rate": float(row["learning_rate"]), "hidden": int(row["hidden"])}
    except (KeyError, TypeError, ValueError):
        raise workshop.UsageError(
            f"row {task} of {path} is {row}: each row needs a number under learning_rate and a whole number under hidden"
        ) from None


def to_tensors(part):
    images, labels = part
    return torch.from_numpy(images), torch.from_numpy(labels)


def train_one_epoch(model, optimizer, images, labels, batch_size: int) -> float:
    """One pass over the training images in a fresh random order; returns the mean loss."""
    model.train()
    order = torch.randperm(len(labels))
    total = 0.0
    for start in range(0, len(labels), batch_size):
        batch = order[start : start + batch_size]
        loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
    return total / len(labels)


@torch.no_grad()
def evaluate(model, images, labels) -> tuple[float, float]:
    """Mean loss and accuracy on held-out images."""
    model.eval()
    logits = model(images)
    loss = nn.functional.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(dim=1) == labels).sum().item() / len(labels)
    return loss, accuracy


if __name__ == "__main__":
    workshop.run_main(main)
