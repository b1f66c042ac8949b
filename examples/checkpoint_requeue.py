"""Checkpoint and requeue: training that survives preemption and time limits

A job on Puma's `windfall` or `gpu_windfall` partition can be stopped at any moment to make room
for jobs that spend an allocation (it is preempted), and every job is stopped at its `--time`
limit. This example trains a small CNN on scikit-learn's digits so that being stopped costs
almost nothing:

- at the end of every epoch, and as soon as it can after a signal (SIGUSR1 from the job file,
  SIGTERM from Slurm), it saves a checkpoint: model, optimizer, every random state, and where it
  was (epoch and batch). The file is written atomically: a job killed while saving leaves the
  previous checkpoint intact;
- when it starts and finds a checkpoint, it carries on from exactly that point;
- its job file, slurm/checkpoint_requeue.sbatch, asks Slurm for SIGUSR1 a few minutes before the
  time limit and puts the job back in the queue (`scontrol requeue`).

Each epoch shuffles the data with a generator seeded from (seed, epoch), and dropout draws from
torch's random state, which the checkpoint holds. So a run that was stopped and resumed, any
number of times, ends with the same parameters and metrics as a run that never stopped (the
tests check this on a real Slurm).

Run it: python examples/checkpoint_requeue.py --quick
"""

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import workshop

CHANCE_ACCURACY = 0.1  # ten digits


def main() -> None:
    parser = workshop.make_parser(__doc__, default_out="results/checkpoint_requeue")
    parser.add_argument(
        "--epochs", type=workshop.positive_int, default=None, help="epochs to train (default: 30; 10 with --quick)"
    )
    parser.add_argument("--batch-size", type=workshop.positive_int, default=32, help="images per batch (default: 32)")
    parser.add_argument("--lr", type=workshop.positive_float, default=1e-3, help="Adam learning rate (default: 0.001)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint file, read at start and written every epoch (default: OUT/checkpoint.pt)",
    )
    args = workshop.parse_args(parser)
    started = time.perf_counter()
    epochs = args.epochs or (10 if args.quick else 30)
    checkpoint_path = args.checkpoint or args.out / "checkpoint.pt"
    if args.checkpoint:
        workshop.ensure_writable_folder(checkpoint_path.parent)

    # Listen for the stop signals first: Slurm may send one while we are still loading.
    stop = workshop.StopSignals(signal.SIGUSR1, signal.SIGTERM)
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    workshop.log(f"start {restarts + 1} of this job (SLURM_RESTART_COUNT={restarts})")
    threads = workshop.use_allocated_threads()
    device = workshop.pick_device()

    x_train, y_train, x_test, y_test = digits_tensors(args.seed, device)
    workshop.seed_everything(args.seed)
    model = digits_cnn().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    settings = {"seed": args.seed, "batch_size": args.batch_size, "lr": args.lr}
    position = {"epoch": 1, "batch": 0, "loss_sum": 0.0, "correct": 0, "seen": 0, "history": []}
    resumed_from = None

    # Carry on from the checkpoint, if there is one
    saved = read_checkpoint(checkpoint_path)
    if saved is not None:
        if saved["settings"] != settings:
            raise workshop.UsageError(
                f"{checkpoint_path} was saved by a run with {saved['settings']}, not {settings}; "
                "use the same options, or another --out to start afresh"
            )
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        workshop.restore_rng_states(saved["rng"])
        position = saved["position"]
        resumed_from = {"epoch": position["epoch"], "batch": position["batch"]}
        workshop.log(f"resuming from {checkpoint_path}: epoch {position['epoch']}, batch {position['batch']}")
    else:
        workshop.log(f"no checkpoint at {checkpoint_path}: starting from scratch")

    def save_checkpoint() -> float:
        """Write the checkpoint atomically; returns the seconds it took."""
        began = time.perf_counter()
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": workshop.rng_states(),
            "position": position,
            "settings": settings,
        }
        workshop.save_torch(state, checkpoint_path)
        return time.perf_counter() - began

    # Train, saving a checkpoint after every epoch and when a signal asks us to stop
    progress = workshop.Progress(total=epochs, unit="images")
    epoch_seconds, checkpoint_seconds = [], []
    batches_per_epoch = -(-len(x_train) // args.batch_size)
    while position["epoch"] <= epochs:
        epoch = position["epoch"]
        epoch_began = time.perf_counter()
        order = epoch_order(args.seed, epoch, len(x_train))
        model.train()
        for batch in range(position["batch"], batches_per_epoch):
            if stop:
                position["batch"] = batch
                save_checkpoint()
                workshop.log(
                    f"stopped by {stop.received} at epoch {epoch}, batch {batch}/{batches_per_epoch}: "
                    f"checkpoint saved to {checkpoint_path}; run again (or requeue) to carry on"
                )
                sys.exit(0)
            rows = order[batch * args.batch_size : (batch + 1) * args.batch_size]
            loss, correct = train_step(model, optimizer, x_train[rows], y_train[rows])
            position["loss_sum"] += loss * len(rows)
            position["correct"] += correct
            position["seen"] += len(rows)
        train_loss = position["loss_sum"] / position["seen"]
        train_accuracy = position["correct"] / position["seen"]
        position["history"].append(
            {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy, "start": restarts + 1}
        )
        position.update(epoch=epoch + 1, batch=0, loss_sum=0.0, correct=0, seen=0)
        checkpoint_seconds.append(save_checkpoint())
        epoch_seconds.append(time.perf_counter() - epoch_began)
        progress.step(epoch, items=len(x_train), loss=train_loss, accuracy=train_accuracy)

    # Evaluate on held-out digits and write the results
    test_loss, test_accuracy = evaluate(model, x_test, y_test)
    workshop.save_torch(model.state_dict(), args.out / "model.pt")
    plot_history(position["history"], args.out / "training_history.png")
    metrics = {
        "epochs": epochs,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "chance_accuracy": CHANCE_ACCURACY,
        "history": position["history"],
        "starts": restarts + 1,
        "resumed_from": resumed_from,
        "timing": checkpoint_timing(epoch_seconds, checkpoint_seconds, checkpoint_path),
    }
    workshop.write_metrics(args.out, metrics, workshop.run_info(started, device=str(device), threads=threads))
    workshop.report_result(test_accuracy=test_accuracy, test_loss=test_loss, epochs=epochs, starts=restarts + 1)


def digits_tensors(seed: int, device: torch.device):
    """scikit-learn's 8x8 digits as image tensors: training images and held-out test images.

    Nothing is chosen on validation images here (no early stopping, no tuning), so the
    validation part of workshop.digits_splits() is trained on too.
    """
    parts = workshop.digits_splits(seed)
    x_train = np.concatenate([parts["train"][0], parts["validation"][0]])
    y_train = np.concatenate([parts["train"][1], parts["validation"][1]])
    x_test, y_test = parts["test"]
    return (torch.from_numpy(a).to(device) for a in (x_train, y_train, x_test, y_test))


def digits_cnn() -> nn.Module:
    """Two convolutions and a small classifier; dropout makes training use the random state."""
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def epoch_order(seed: int, epoch: int, size: int) -> torch.Tensor:
    """The shuffled order of the training images in `epoch`: from (seed, epoch) alone, so a
    resumed run shuffles exactly as an uninterrupted one without storing the order."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return torch.randperm(size, generator=generator)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images, labels) -> tuple[float, int]:
    optimizer.zero_grad()
    logits = model(images)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    optimizer.step()
    return loss.item(), int((logits.argmax(1) == labels).sum())


@torch.no_grad()
def evaluate(model: nn.Module, images, labels) -> tuple[float, float]:
    model.eval()
    logits = model(images)
    return nn.functional.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def read_checkpoint(path: Path) -> dict | None:
    """The checkpoint at `path`, or None; a file that is not one of our checkpoints is bad input."""
    try:
        return workshop.load_checkpoint(path)
    except Exception as error:  # a truncated or foreign file: say which, do not overwrite it
        raise workshop.UsageError(
            f"cannot read checkpoint {path} ({type(error).__name__}); move it away or choose another --out"
        ) from None


def checkpoint_timing(epoch_seconds: list[float], checkpoint_seconds: list[float], path: Path) -> dict:
    """What checkpointing costs in this start of the job: seconds per save, share of an epoch."""
    if not epoch_seconds:  # resumed from a checkpoint of a finished run: nothing was trained
        return {}
    epoch, save = float(np.median(epoch_seconds)), float(np.median(checkpoint_seconds))
    return {
        "epoch_seconds": epoch,
        "checkpoint_seconds": save,
        "checkpoint_share": save / epoch,
        "checkpoint_bytes": path.stat().st_size,
    }


def plot_history(history: list[dict], path: Path) -> None:
    """Training loss per epoch, coloured by the start of the job that trained the epoch."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for start in sorted({row["start"] for row in history}):
        rows = [row for row in history if row["start"] == start]
        axis.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], "o-", label=f"start {start}")
    axis.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Training, across restarts of the job")
    axis.legend()
    workshop.save_figure(figure, path)


if __name__ == "__main__":
    workshop.run_main(main)
