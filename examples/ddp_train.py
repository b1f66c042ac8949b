"""Distributed data-parallel training (DDP): one model trained by several processes at once.

Every process holds a full copy of the model and sees its own share of each batch. After the
backward pass, DistributedDataParallel averages the gradients across all processes (an
all-reduce), so every copy takes the same optimizer step and the copies stay identical. With
the same *global* batch (each process gets global / processes images) and the same seed, N
processes follow the path one process would, N times as fast at best.

The same script runs three ways, and finds out which from its environment:

- `python3 examples/ddp_train.py`: one process, no torch.distributed at all (the reference);
- `srun python3 examples/ddp_train.py` in a job with --ntasks=N: Slurm starts the N processes;
  rank and world size come from SLURM_PROCID and SLURM_NTASKS, the address of rank 0 from
  MASTER_ADDR and MASTER_PORT, which the job file sets (slurm/ddp_srun.sbatch);
- `torchrun --standalone --nproc_per_node=N examples/ddp_train.py`: torchrun starts the N
  processes inside one Slurm task and sets RANK, WORLD_SIZE, LOCAL_RANK and the rest
  (slurm/ddp_torchrun.sbatch).

The processes talk through the gloo backend on CPUs and NCCL on GPUs (one GPU per process).
Only rank 0 evaluates, prints progress and writes metrics.json.
"""

import os
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import workshop


def main() -> None:
    parser = workshop.make_parser(__doc__, default_out="results/ddp_train")
    parser.add_argument(
        "--epochs", type=workshop.positive_int, default=20, help="passes over the training images (default: 20; 3 with --quick)"
    )
    parser.add_argument(
        "--batch-size",
        type=workshop.positive_int,
        default=64,
        help="GLOBAL batch: images per optimizer step over all processes together; "
        "each process takes batch-size / processes (default: 64)",
    )
    parser.add_argument("--lr", type=workshop.positive_float, default=0.05, help="SGD learning rate (default: 0.05)")
    args = workshop.parse_args(parser)
    started = time.perf_counter()

    place = where_am_i()
    if args.batch_size % place["world_size"]:
        raise workshop.UsageError(
            f"--batch-size {args.batch_size} does not split evenly over {place['world_size']} processes: "
            f"use a multiple of {place['world_size']}"
        )
    per_process_batch = args.batch_size // place["world_size"]
    epochs = 3 if args.quick else args.epochs
    is_rank0 = place["rank"] == 0

    # Each process: its threads, its device, and a line in the log saying so.
    threads = threads_per_process(place)
    torch.set_num_threads(threads)
    device = device_for(place["local_rank"])
    backend = "nccl" if device.type == "cuda" else "gloo"
    workshop.log(
        f"rank {place['rank']} of {place['world_size']} (started by {place['launcher']}) on {os.uname().nodename}: "
        f"{threads} thread(s), device {device}, batch {per_process_batch} of {args.batch_size}"
    )
    if place["world_size"] > 1:
        # Every process connects to rank 0 at MASTER_ADDR:MASTER_PORT and waits for the others.
        dist.init_process_group(backend, rank=place["rank"], world_size=place["world_size"])

    # Same seed everywhere: the same split, the same initial weights, the same shuffles.
    workshop.seed_everything(args.seed)
    data = workshop.digits_splits(args.seed)
    train_set = TensorDataset(*map(torch.from_numpy, data["train"]))
    # The sampler shuffles all images with the seed (and the epoch), then gives process r the
    # images at positions r, r + N, r + 2N, ...; so the first batch of every process together
    # is exactly the first global batch one process would take. drop_last: every step is a full
    # global batch, whatever the number of processes.
    sampler = DistributedSampler(
        train_set, num_replicas=place["world_size"], rank=place["rank"], shuffle=True, seed=args.seed, drop_last=True
    )
    loader = DataLoader(train_set, batch_size=per_process_batch, sampler=sampler, drop_last=True)

    model = small_cnn().to(device)
    if place["world_size"] > 1:
        model = DistributedDataParallel(model)  # averages gradients over processes in backward()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    # Train: each epoch, every process takes its share of every global batch.
    progress = workshop.Progress(total=epochs, unit="images") if is_rank0 else None
    history, train_seconds, images_seen = [], 0.0, 0
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same one in every process
        epoch_started = time.perf_counter()
        loss = train_one_epoch(model, loader, optimizer, device, place["world_size"])
        train_seconds += time.perf_counter() - epoch_started
        images_seen += len(loader) * args.batch_size
        if is_rank0:  # evaluation on rank 0 only: the others go on to the next epoch and wait for it there
            _, validation_accuracy = evaluate(unwrap(model), data["validation"], device)
            history.append({"epoch": epoch, "train_loss": loss, "validation_accuracy": validation_accuracy})
            progress.step(epoch, items=len(loader) * args.batch_size, loss=loss, val_accuracy=validation_accuracy)

    if place["world_size"] > 1:
        dist.destroy_process_group()
    if not is_rank0:
        return

    # Rank 0 reports: held-out test accuracy, and how fast training went.
    test_loss, test_accuracy = evaluate(unwrap(model), data["test"], device)
    throughput = images_seen / train_seconds
    metrics = {
        "processes": place["world_size"],
        "launcher": place["launcher"],
        "backend": backend if place["world_size"] > 1 else None,
        "global_batch": args.batch_size,
        "per_process_batch": per_process_batch,
        "epochs": epochs,
        "steps_per_epoch": len(loader),
        "first_epoch_train_loss": history[0]["train_loss"],  # same images per step: equal for any N, up to rounding
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "train_images_per_s": throughput,
        "train_seconds": train_seconds,
        "threads_per_process": threads,
        "history": history,
    }
    run = workshop.run_info(started, device=str(device), threads=threads * place["world_size"])
    workshop.write_metrics(args.out, metrics, run)
    workshop.report_result(processes=place["world_size"], test_accuracy=test_accuracy, images_per_s=round(throughput))


def where_am_i() -> dict:
    """This process's rank, local rank and the world size, from whoever started it.

    torchrun sets RANK/WORLD_SIZE/LOCAL_RANK. srun sets SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID
    for each task it starts (SLURM_STEP_ID tells an srun task from the batch script itself,
    which also sees SLURM_NTASKS). Neither: one process on its own.
    """
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return {
            "rank": int(env["RANK"]),
            "local_rank": int(env.get("LOCAL_RANK", 0)),
            "world_size": int(env["WORLD_SIZE"]),
            "local_world_size": int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
            "launcher": "torchrun",
        }
    if "SLURM_STEP_ID" in env and "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", 1)) > 1:
        for variable in ("MASTER_ADDR", "MASTER_PORT"):
            if variable not in env:
                raise workshop.UsageError(
                    f"{variable} is not set: under srun every process must find rank 0; "
                    "export MASTER_ADDR and MASTER_PORT in the job file (see slurm/ddp_srun.sbatch)"
                )
        return {
            "rank": int(env["SLURM_PROCID"]),
            "local_rank": int(env.get("SLURM_LOCALID", 0)),
            "world_size": int(env["SLURM_NTASKS"]),
            "local_world_size": 1,  # srun gives every task its own --cpus-per-task
            "launcher": "srun",
        }
    return {"rank": 0, "local_rank": 0, "world_size": 1, "local_world_size": 1, "launcher": "single process"}


def threads_per_process(place: dict) -> int:
    """The allocation's CPUs, shared out between the processes of this task.

    Under srun each task has its own --cpus-per-task. Under torchrun all processes share the one
    task's CPUs: 2 CPUs and 2 processes make 1 thread each (more would oversubscribe the cores).
    """
    return max(1, workshop.cpus_from_allocation() // place["local_world_size"])


def device_for(local_rank: int) -> torch.device:
    """GPU number `local_rank` of this node if torch sees GPUs (one per process), else the CPU."""
    device = workshop.pick_device()
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return device


def small_cnn() -> nn.Module:
    """Two 3x3 convolutions and a linear layer: 8x8 digit images in, 10 scores out.

    No dropout and no batch normalization on purpose: both would make a process's result depend
    on its share of the batch, so N processes would no longer follow the path of one.
    """
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def train_one_epoch(model, loader, optimizer, device, world_size: int) -> float:
    """One pass over this process's share; returns the mean loss over ALL processes' images."""
    model.train()
    total = torch.zeros(2, dtype=torch.float64, device=device)  # summed loss, images
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()  # DDP all-reduces (averages) the gradients here
        optimizer.step()
        total += torch.tensor([loss.item() * len(labels), len(labels)], dtype=torch.float64, device=device)
    if world_size > 1:
        dist.all_reduce(total)  # sum over processes, for a loss that means the same for any N
    return (total[0] / total[1]).item()


def unwrap(model) -> nn.Module:
    """The model inside DistributedDataParallel (evaluation needs no gradient averaging)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


@torch.no_grad()
def evaluate(model: nn.Module, part, device) -> tuple[float, float]:
    """Mean loss and accuracy on held-out images (all of them, in one process)."""
    model.eval()
    images, labels = (torch.from_numpy(array).to(device) for array in part)
    logits = model(images)
    loss = nn.functional.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(dim=1) == labels).sum().item() / len(labels)
    return loss, accuracy


if __name__ == "__main__":
    workshop.run_main(main)
