"""Checkpoint and requeue: training that survives preemption and time limits

A job on Puma's `windfall` or `gpu_windfall` partition can be stopped at any moment to make room
for jobs that spend an allocation (it is preempted), and every job is stopped at its `--time`
limit. This example trains the digits CNN so that being stopped costs almost nothing:

- at the end of every epoch, and at the next batch after a signal (SIGUSR1 from the job file
  before the time limit, SIGTERM from Slurm on preemption), it saves a checkpoint with
  `torch.save`: the model, the optimizer, torch's random states and where training is. The file
  is written to a temporary file and renamed, so a job killed while saving leaves the previous
  checkpoint whole;
- when it starts and finds a checkpoint, it loads it with `torch.load(weights_only=True)` and
  carries on from exactly that batch;
- its job file, slurm/checkpoint_requeue.sbatch, asks Slurm for SIGUSR1 a few minutes before the
  time limit and then puts the job back in the queue (`scontrol requeue`).

So a run that was stopped and resumed, any number of times, ends with the same parameters and
metrics, bit for bit, as a run that never stopped (the tests check this on a real Slurm).

Run it: python3 examples/checkpoint_requeue.py --quick
"""

import io
import math
import os
import signal
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import digits
import workshop

CHANCE_ACCURACY = 0.1  # ten digits, equally common: guessing gets one in ten


def main() -> None:
    parser = workshop.make_parser(
        "Train the digits CNN with a checkpoint every epoch and on SIGUSR1 or SIGTERM; resume from it.",
        default_out="results/checkpoint_requeue",
    )
    parser.add_argument("--epochs", type=workshop.at_least(1), default=30, help="epochs in all, over every start of the job")
    parser.add_argument("--batch-size", type=workshop.at_least(1), default=32, help="images per training step")
    parser.add_argument("--lr", type=workshop.positive_float, default=1e-3, help="Adam's learning rate")
    args = workshop.parse_args(parser, quick_defaults={"epochs": 2, "batch_size": 128})
    started = time.perf_counter()

    # Listen for the stop signals first: Slurm may send one while the data are still loading.
    stop = StopRequest(signal.SIGUSR1, signal.SIGTERM)
    start = int(os.environ.get("SLURM_RESTART_COUNT", "0")) + 1  # a requeued job counts its starts
    workshop.log(f"start {start} of this job (SLURM_RESTART_COUNT={start - 1})")
    threads = workshop.use_allocated_threads()
    device = workshop.pick_device()

    # The data and the model, from digits.py: the same split and CNN as the digits page.
    split = digits.load_digits_split()
    train_images, train_labels = (tensor.to(device) for tensor in split["train"])
    workshop.log(f"{len(train_images)} training, {len(split['validation'][0])} validation, {len(split['test'][0])} test images")
    torch.manual_seed(args.seed)
    model = digits.small_cnn().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    # A checkpoint of other settings would mix two different trainings: it is refused.
    settings = {"seed": args.seed, "batch_size": args.batch_size, "lr": args.lr}

    # Carry on from the checkpoint, if there is one; else start at epoch 1, batch 0.
    checkpoint_path = args.out / "checkpoint.pt"
    checkpoint = load_checkpoint(checkpoint_path, settings)
    if checkpoint is None:
        workshop.log(f"no checkpoint at {checkpoint_path}: starting from scratch")
        epoch, batch, order, history, resumed_from = 1, 0, None, [], None
    else:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        restore_rng_states(checkpoint["rng"])
        epoch, batch, order, history = checkpoint["epoch"], checkpoint["batch"], checkpoint["order"], checkpoint["history"]
        resumed_from = {"epoch": epoch, "batch": batch}
        workshop.log(f"resuming from {checkpoint_path}: epoch {epoch}, batch {batch}")

    def save() -> float:
        """Save everything a resumed run needs to go on exactly as this one would; returns the seconds it took."""
        began = time.perf_counter()
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),  # Adam's running averages and step count
            "rng": rng_states(),  # the shuffle and dropout draw from these
            "epoch": epoch,  # the epoch in progress,
            "batch": batch,  # the batches of it already trained,
            "order": order,  # and its shuffled order (None between two epochs)
            "history": history,
            "settings": settings,
        }
        save_checkpoint(state, checkpoint_path)
        return time.perf_counter() - began

    # Train, with a checkpoint after every epoch, and one as soon as a signal asks to stop
    batches_per_epoch = math.ceil(len(train_images) / args.batch_size)
    progress = workshop.Progress(total=args.epochs, unit="images", done=epoch - 1)
    epoch_seconds, checkpoint_seconds = [], []
    while epoch <= args.epochs:
        epoch_began = time.perf_counter()
        if order is None:
            order = torch.randperm(len(train_images))  # drawn from torch's random state, which the checkpoint holds
        model.train()
        while batch < batches_per_epoch:
            if stop.signal_name:  # between two batches: the model and optimizer are consistent
                save()
                workshop.log(
                    f"stopped by {stop.signal_name} at epoch {epoch}, batch {batch}/{batches_per_epoch}: "
                    f"checkpoint saved to {checkpoint_path}; run again (or requeue) to carry on"
                )
                return
            rows = order[batch * args.batch_size : (batch + 1) * args.batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(train_images[rows]), train_labels[rows]).backward()
            optimizer.step()
            batch += 1
        validation_loss, validation_accuracy, _ = digits.evaluate(model, [split["validation"]], device)
        history.append({"epoch": epoch, "validation_loss": validation_loss, "validation_accuracy": validation_accuracy, "start": start})
        epoch, batch, order = epoch + 1, 0, None
        checkpoint_seconds.append(save())
        epoch_seconds.append(time.perf_counter() - epoch_began)
        progress.step(epoch - 1, items=len(train_images), val_loss=validation_loss, val_accuracy=validation_accuracy)

    # Evaluate on the held-out test digits, against chance, and write the results
    test_loss, test_accuracy, _ = digits.evaluate(model, [split["test"]], device)
    plot_history(history, args.out / "training_history.png")
    metrics = {
        "epochs": args.epochs,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "chance_accuracy": CHANCE_ACCURACY,
        "history": history,
        "starts": start,
        "resumed_from": resumed_from,
        "timing": checkpoint_cost(epoch_seconds, checkpoint_seconds, checkpoint_path),
    }
    workshop.write_metrics(args.out, metrics, started, device=device, threads=threads)
    workshop.report_result(test_accuracy=test_accuracy, chance_accuracy=CHANCE_ACCURACY, epochs=args.epochs, starts=start)


class StopRequest:
    """Which signal asked the run to stop, if one did.

    The handler only sets this flag. The training loop checks it between two batches, where the
    model and the optimizer agree, and saves there: a save started inside the handler could
    interrupt another save, or catch the optimizer halfway through a step.
    """

    def __init__(self, *signals: signal.Signals):
        self.signal_name: str | None = None
        for number in signals:
            signal.signal(number, self.remember)

    def remember(self, number: int, frame) -> None:
        self.signal_name = signal.Signals(number).name


def rng_states() -> dict:
    """The random states training draws from: torch's on the CPU (the shuffled order, dropout on
    the CPU) and on the GPUs (dropout on a GPU). Python's and NumPy's would belong here too if
    training drew from them; here nothing does. They are tensors, as weights_only=True asks."""
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(state: dict, path: Path) -> None:
    """torch.save, atomically: the bytes go to a temporary file in the same folder, which is then
    renamed over `path` (workshop.atomic_write_bytes). A rename is atomic, so a job killed while
    saving leaves the previous checkpoint whole (and a stray temporary file), never half a file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    workshop.atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, settings: dict) -> dict | None:
    """The checkpoint at `path`, or None when there is none yet (the job's first start).

    weights_only=True reads tensors and plain Python values only: a checkpoint is a pickle, and
    without it loading one could run any code the file holds. map_location="cpu" loads a
    checkpoint saved on a GPU on any node; load_state_dict then moves it to the model's device.
    A file that cannot be read is not overwritten: the run stops and says so.
    """
    if not path.is_file():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file
        workshop.refuse(f"cannot read the checkpoint {path} ({type(error).__name__}); move it away, or choose another --out to start afresh")
    if checkpoint.get("settings") != settings:
        workshop.refuse(
            f"the checkpoint {path} was saved by a run with {checkpoint.get('settings')}, not {settings}; "
            "use the same options to carry on, or another --out to start afresh"
        )
    return checkpoint


def checkpoint_cost(epoch_seconds: list[float], checkpoint_seconds: list[float], path: Path) -> dict:
    """What checkpointing cost in this start of the job: seconds per save, and its share of an epoch."""
    if not epoch_seconds:  # resumed from the checkpoint of a finished run: nothing was trained
        return {}
    epoch, save = statistics.median(epoch_seconds), statistics.median(checkpoint_seconds)
    return {"epoch_seconds": epoch, "checkpoint_seconds": save, "checkpoint_share": save / epoch, "checkpoint_bytes": path.stat().st_size}


def plot_history(history: list[dict], path: Path) -> None:
    """Validation loss per epoch, coloured by the start of the job that trained the epoch."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for start in sorted({row["start"] for row in history}):
        rows = [row for row in history if row["start"] == start]
        axis.plot([row["epoch"] for row in rows], [row["validation_loss"] for row in rows], "o-", label=f"start {start}")
    axis.set(xlabel="epoch", ylabel="validation loss", yscale="log", title="Training, across the starts of the job")
    axis.legend()
    workshop.save_figure(figure, path)


if __name__ == "__main__":
    main()
