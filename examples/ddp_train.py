"""Distributed data-parallel training (DDP): one model trained by several processes at once.

Every process holds a full copy of the digits CNN and takes its own share of each batch. In the
backward pass, DistributedDataParallel averages the gradients over all processes (an
all-reduce), so every copy takes the same optimizer step and the copies stay identical. With the
same *global* batch (each of N processes takes global / N images), N processes train as one
would, up to N times as fast at best.

The same script runs three ways, and learns from its environment which one:

- `python3 examples/ddp_train.py`: one process on its own (the reference);
- `srun python3 examples/ddp_train.py` in a job with --ntasks=N: Slurm starts the N processes,
  each with SLURM_PROCID and SLURM_NTASKS; the job file exports MASTER_ADDR and MASTER_PORT,
  where rank 0 listens (slurm/ddp_srun.sbatch);
- `torchrun --standalone --nproc_per_node=N examples/ddp_train.py`: torchrun starts the N
  processes and sets RANK, WORLD_SIZE, LOCAL_RANK and the address (slurm/ddp_torchrun.sbatch).

The processes talk through the gloo backend on CPUs and NCCL on GPUs (one GPU per process).
Only rank 0 evaluates, prints progress and writes metrics.json.
"""

import contextlib
import os
import time

import torch
import torch.distributed as dist
import torch.distributed.nn  # noqa: F401  before the process group exists: see process_group() below
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import digits
import workshop


def main() -> None:
    parser = workshop.make_parser("Train the digits CNN with data-parallel processes.", default_out="results/ddp_train")
    parser.add_argument("--epochs", type=workshop.at_least(1), default=20, help="passes over the training images")
    parser.add_argument(
        "--batch-size",
        type=workshop.at_least(1),
        default=64,
        help="the GLOBAL batch: images per optimizer step over all processes together; "
        "each process takes batch-size / processes",
    )
    parser.add_argument("--learning-rate", type=workshop.positive_float, default=3e-3, help="Adam's starting step size")
    args = workshop.parse_args(parser, quick_defaults={"epochs": 3})
    started = time.perf_counter()

    # 1. Who am I? The launcher says, in environment variables: torchrun sets RANK, WORLD_SIZE and
    # LOCAL_RANK; srun sets SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID in each task it starts
    # (SLURM_STEP_ID tells those from the batch script itself, which sees SLURM_NTASKS too).
    # The rank numbers the processes 0 to N-1; the local rank numbers those on one node (its GPU).
    environment = os.environ
    if "RANK" in environment:
        launcher, rank, world_size = "torchrun", int(environment["RANK"]), int(environment["WORLD_SIZE"])
        local_rank, processes_per_task = int(environment["LOCAL_RANK"]), int(environment["LOCAL_WORLD_SIZE"])
    elif "SLURM_STEP_ID" in environment and int(environment.get("SLURM_NTASKS", "1")) > 1:
        launcher, rank, world_size = "srun", int(environment["SLURM_PROCID"]), int(environment["SLURM_NTASKS"])
        local_rank, processes_per_task = int(environment["SLURM_LOCALID"]), 1  # each srun task has its own CPUs
        if not {"MASTER_ADDR", "MASTER_PORT"} <= environment.keys():
            workshop.refuse(
                "MASTER_ADDR or MASTER_PORT is not set: under srun every process must find rank 0; "
                "export both in the job file as slurm/ddp_srun.sbatch does"
            )
    else:
        launcher, rank, world_size, local_rank, processes_per_task = "single process", 0, 1, 0, 1
    if args.batch_size % world_size:
        workshop.refuse(f"--batch-size {args.batch_size} does not split evenly over {world_size} processes: use a multiple of {world_size}")
    per_process_batch = args.batch_size // world_size

    # Every process loads all the images; the sampler below gives each its share.
    data = digits.load_digits_split()
    train_set = TensorDataset(*data["train"])
    if args.batch_size > len(train_set):
        workshop.refuse(f"--batch-size {args.batch_size} is more than the {len(train_set)} training images: use a smaller batch")

    # Processes started by torchrun share the CPUs of one Slurm task: 2 CPUs, 2 processes, 1 thread
    # each. More threads than cores would make every process wait for the others.
    threads = max(1, workshop.cpus_from_allocation() // processes_per_task)
    torch.set_num_threads(threads)
    device = workshop.pick_device()
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)  # one GPU per process: GPU number local rank of this node
        torch.cuda.set_device(device)
    torch.manual_seed(args.seed)  # the same in every process: the same dropout, the same shuffles
    workshop.log(
        f"rank {rank} of {world_size} (started by {launcher}) on {os.uname().nodename}: "
        f"{threads} thread(s), device {device}, batch {per_process_batch} of {args.batch_size}"
    )

    # 2. The process group: every process connects to rank 0 at MASTER_ADDR:MASTER_PORT and waits
    # there until all of them have come. gloo moves tensors between CPUs, NCCL between GPUs.
    backend = "nccl" if device.type == "cuda" else "gloo"
    with process_group(backend, rank, world_size):
        # 3. The sampler shares out the images: it shuffles all of them the same way in every
        # process (seed + epoch), then gives process r those at positions r, r + N, r + 2N, ... So
        # the batches of step k of all processes together hold the images one process alone takes
        # in its step k. drop_last: every step is a full global batch, whatever N is.
        sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, seed=args.seed, drop_last=True)
        loader = DataLoader(train_set, batch_size=per_process_batch, sampler=sampler, drop_last=True)  # in memory: no workers

        # 4. DistributedDataParallel copies rank 0's weights to every process now, and averages the
        # gradients over all processes in every backward().
        model = DistributedDataParallel(digits.small_cnn().to(device))
        optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)  # smaller steps towards the end

        progress = workshop.Progress(total=args.epochs, unit="images")
        history, train_seconds = [], 0.0
        for epoch in range(1, args.epochs + 1):
            sampler.set_epoch(epoch)  # a new shuffle each epoch, the same one in every process
            epoch_started = time.perf_counter()
            model.train()
            summed = torch.zeros(2, dtype=torch.float64, device=device)  # this process's loss x images, images
            for images, labels in loader:
                images, labels = images.to(device), labels.to(device)
                loss = F.cross_entropy(model(images), labels)
                optimizer.zero_grad()
                loss.backward()  # the all-reduce of the gradients happens in here
                optimizer.step()
                summed += torch.tensor([loss.item() * len(labels), len(labels)], dtype=torch.float64, device=device)
            dist.all_reduce(summed)  # summed over the processes: the mean loss of all the images, for any N
            train_seconds += time.perf_counter() - epoch_started
            train_loss = (summed[0] / summed[1]).item()
            schedule.step()

            # 5. Evaluation on rank 0 only: every copy of the model is the same, so one is enough.
            # The others go on to the next epoch and wait for rank 0 in its first all-reduce.
            if rank == 0:
                _, validation_accuracy, _ = digits.evaluate(model.module, batches(data["validation"]), device)
                history.append({"epoch": epoch, "train_loss": train_loss, "validation_accuracy": validation_accuracy})
                progress.step(epoch, items=len(loader) * args.batch_size, loss=train_loss, val_accuracy=validation_accuracy)

        if rank == 0:
            test_loss, test_accuracy, _ = digits.evaluate(model.module, batches(data["test"]), device)
            images_per_s = args.epochs * len(loader) * args.batch_size / train_seconds
            metrics = {
                "processes": world_size,
                "launcher": launcher,
                "backend": backend,
                "global_batch": args.batch_size,
                "per_process_batch": per_process_batch,
                "epochs": args.epochs,
                "steps_per_epoch": len(loader),
                "first_epoch_train_loss": history[0]["train_loss"],
                "test_loss": test_loss,
                "test_accuracy": test_accuracy,
                "train_images_per_s": images_per_s,
                "train_seconds": train_seconds,
                "threads_per_process": threads,
                "history": history,
            }
            workshop.write_metrics(args.out, metrics, started, device=device, threads=threads * world_size)
            workshop.report_result(processes=world_size, test_accuracy=test_accuracy, images_per_s=round(images_per_s))
        del model  # DDP holds the process group: let go of it, so that leaving the group can close it


@contextlib.contextmanager
def process_group(backend: str, rank: int, world_size: int):
    """Join the process group for the `with` block; leave it together with the other processes.

    A process on its own makes a group of one (its address book in memory, no MASTER_ADDR), so
    the training code is the same for one process as for many.

    Leaving closes the group, and closing waits until the group's threads have let go of the
    last tensors exchanged. A group left open keeps its threads running while Python shuts down,
    and a thread that lets go of a tensor then aborts the process, after its work is done
    ("terminate called without an active exception"). Two things hold a group open: a model
    still wrapped in DDP (hence `del model` before leaving), and torch.distributed.nn, which DDP
    imports on first use and which keeps whatever group exists when it is imported (hence
    imported at the top, before there is one).
    """
    if world_size > 1:
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    else:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
        # Every process waits here until rank 0 has evaluated and written its results: a process
        # that tore down its connections while rank 0 was still at work could abort the job.
        dist.barrier()
    finally:
        dist.destroy_process_group()  # also after an error: the others' next exchange then fails at once


def batches(part):
    """Held-out (images, labels) in batches of 256, for digits.evaluate."""
    images, labels = part
    return zip(images.split(256), labels.split(256))


if __name__ == "__main__":
    main()
