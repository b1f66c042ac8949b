"""One task of a hyperparameter sweep: train the digits CNN with one row of the settings file.

A sweep trains the same model many times, each time with another setting (here the learning
rate), and keeps the setting that does best on images held out for that choice: the
*validation* images. The *test* images are only used to report how the chosen setting does on
images no choice has seen.

On Puma every setting is one task of a Slurm job array (slurm/sweep_array.sbatch). Slurm gives
each task its own number in SLURM_ARRAY_TASK_ID; the task trains that row of the settings file
and writes its own metrics.json. A second job (examples/sweep_gather.py) collects them all once
every task has ended well.
"""

import argparse
import csv
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import digits
import workshop

BATCH_SIZE = 32  # the same in every task: the learning rate is the only difference between them


def main() -> None:
    parser = workshop.make_parser("Train the digits CNN with one row of a settings file.", default_out="results/sweep_train")
    parser.add_argument("--params", type=Path, default=Path("examples/sweep_params.csv"), help="CSV file with a header line and one setting per row")
    parser.add_argument(
        "--task",
        type=workshop.at_least(1),
        default=None,
        help="the row of --params to train, 1 = the first under the header "
        "(default: $SLURM_ARRAY_TASK_ID in a job array, else 1)",
    )
    parser.add_argument("--epochs", type=workshop.at_least(1), default=20, help="passes over the training images")
    args = workshop.parse_args(parser, quick_defaults={"epochs": 2})
    started = time.perf_counter()

    # The job array's lesson: every task runs this same script, and only the number Slurm gives
    # each task tells them apart. That number picks a row of the settings file.
    task = args.task or int(os.environ.get("SLURM_ARRAY_TASK_ID", "1"))  # outside a job array: the first row
    row = read_row(args.params, task)
    try:  # add a column to the file? read it here, and use it below
        settings = {"learning_rate": workshop.positive_float(row.get("learning_rate") or "")}
    except argparse.ArgumentTypeError as error:
        workshop.refuse(f"row {task} of {args.params}, column learning_rate: {error}")
    workshop.log(f"task {task}: " + ", ".join(f"{name} {value:g}" for name, value in settings.items()))

    threads = workshop.use_allocated_threads()
    device = workshop.pick_device()
    torch.manual_seed(args.seed)

    # Every task trains on the same images and is scored on the same validation and test images.
    data = digits.load_digits_split()
    train_loader = DataLoader(TensorDataset(*data["train"]), batch_size=BATCH_SIZE, shuffle=True)
    model = digits.small_cnn().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"])

    progress = workshop.Progress(total=args.epochs, unit="images")
    for epoch in range(1, args.epochs + 1):
        model.train()
        for images, labels in train_loader:
            loss = F.cross_entropy(model(images.to(device)), labels.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        validation_loss, validation_accuracy, _ = digits.evaluate(model, batches(data["validation"]), device)
        progress.step(epoch, items=len(train_loader.dataset), val_loss=validation_loss, val_accuracy=validation_accuracy)

    # The test images are scored once, at the end; the gathering job chooses by validation only.
    _, test_accuracy, _ = digits.evaluate(model, batches(data["test"]), device)
    metrics = {
        "task": task,
        **settings,
        "epochs": args.epochs,
        "validation_loss": validation_loss,
        "validation_accuracy": validation_accuracy,
        "test_accuracy": test_accuracy,
        "settings_row": row,  # as the file has it: the gathering job checks it still does
    }
    workshop.write_metrics(args.out, metrics, started, device=device, threads=threads)
    workshop.report_result(task=task, **settings, val_accuracy=validation_accuracy, test_accuracy=test_accuracy)


def read_row(path: Path, task: int) -> dict[str, str]:
    """Row `task` of the settings file (1 = the first under the header), as text."""
    try:
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
    except OSError as error:
        workshop.refuse(f"cannot read --params {path}: {error.strerror}")
    if not 1 <= task <= len(rows):
        workshop.refuse(f"task {task} is not a row of {path} (rows 1 to {len(rows)}): make it --array=1-{len(rows)}")
    return rows[task - 1]


def batches(part):
    """Held-out (images, labels) in batches of 256, for digits.evaluate."""
    images, labels = part
    return zip(images.split(256), labels.split(256))


if __name__ == "__main__":
    main()
