"""Use what you asked for: training throughput at 1, 2, ... threads

A Slurm job gets the CPU cores it asked for with `--cpus-per-task`, and no more: the other cores
of the node belong to other people's jobs. This script trains a small CNN on scikit-learn's
digits for a fixed number of steps with 1, 2, 4, ... threads, up to the job's allocation, and
measures the throughput (images per second) and the parallel efficiency of each. It then runs
once more with twice as many threads as the allocation, as a script does that takes its thread
count from `os.cpu_count()` (every core of the node): oversubscribed, the threads wait for each
other and the throughput drops.

The efficiency at n threads is throughput(n) / (n x throughput(1)): 1.0 means n threads are n
times as fast as one; 0.5 means half of the cores you asked for (and are charged for) are wasted.

Run it: python examples/thread_scaling.py --quick
"""

# %%
import os
import time

import matplotlib

matplotlib.use("Agg")  # write figures to files; a batch job has no screen
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import workshop


# %% [markdown]
# ## The whole run
# First what the job was given: `workshop.use_allocated_threads()` reads `SLURM_CPUS_PER_TASK`
# (outside Slurm: the CPUs this process may run on, `os.sched_getaffinity`), never
# `os.cpu_count()`, and hands that number to `torch.set_num_threads`. Then the same model is
# trained from the same start for the same steps at each thread count; only
# `torch.set_num_threads` changes.


# %%
def main() -> None:
    parser = workshop.make_parser(__doc__, default_out="results/thread_scaling")
    parser.add_argument("--batch-size", type=workshop.positive_int, default=256, help="images per step (default: 256)")
    parser.add_argument(
        "--steps", type=workshop.positive_int, default=None, help="timed steps per thread count (default: 40; 8 with --quick)"
    )
    parser.add_argument(
        "--repeats",
        type=workshop.positive_int,
        default=None,
        help="timings per thread count, the best one kept (default: 3; 1 with --quick)",
    )
    args = workshop.parse_args(parser)
    started = time.perf_counter()
    steps = args.steps or (8 if args.quick else 40)
    repeats = args.repeats or (1 if args.quick else 3)

    # Processes waiting for a core, averaged over the last minute: above the core count, other
    # work competes with this measurement.
    load_average = os.getloadavg()[0]
    allocated = workshop.use_allocated_threads()
    affinity = sorted(os.sched_getaffinity(0))
    workshop.log(f"this process may run on {len(affinity)} CPUs: {affinity}; load average {load_average:.1f}")
    workshop.seed_everything(args.seed)
    images, labels = digits_batch(args.batch_size, args.seed)

    counts = thread_counts(allocated) + [2 * allocated]
    fastest = dict.fromkeys(counts, 0.0)
    for repeat in range(repeats):  # in turn, so that a busy moment of the node slows every count alike
        for threads in counts:
            torch.set_num_threads(threads)
            images_per_s = measure_throughput(images, labels, steps, args.seed)
            fastest[threads] = max(fastest[threads], images_per_s)
            over = "  (oversubscribed)" if threads > allocated else ""
            workshop.log(f"repeat {repeat + 1}/{repeats}  threads {threads}: {images_per_s:.0f} images/s{over}")
    rows = [{"threads": t, "images_per_s": fastest[t], "oversubscribed": t > allocated} for t in counts]
    torch.set_num_threads(allocated)
    single = rows[0]["images_per_s"]
    for row in rows:
        row["speedup"] = row["images_per_s"] / single
        # efficiency per core of the allocation: oversubscribed threads share those cores
        row["efficiency"] = row["speedup"] / min(row["threads"], allocated)

    plot_scaling(rows, allocated, args.out / "thread_scaling.png")
    best = max((row for row in rows if not row["oversubscribed"]), key=lambda row: row["images_per_s"])
    oversubscribed = rows[-1]
    metrics = {
        "allocated_threads": allocated,
        "slurm_cpus_per_task": os.environ.get("SLURM_CPUS_PER_TASK"),
        "affinity_cpus": len(affinity),
        "load_average_at_start": load_average,
        "batch_size": args.batch_size,
        "steps": steps,
        "table": rows,
        "best_threads": best["threads"],
        "images_per_s_1_thread": single,
        "images_per_s_allocation": rows[-2]["images_per_s"],
        "efficiency_at_allocation": rows[-2]["efficiency"],
        # the speed with twice as many threads as cores, as a share of the speed with one per core
        "oversubscribed_relative_speed": oversubscribed["images_per_s"] / rows[-2]["images_per_s"],
    }
    workshop.write_metrics(args.out, metrics, workshop.run_info(started, threads=allocated))
    workshop.report_result(
        threads=allocated,
        images_per_s_1_thread=metrics["images_per_s_1_thread"],
        images_per_s_allocation=metrics["images_per_s_allocation"],
        efficiency=rows[-2]["efficiency"],
    )


# %% [markdown]
# ## The thread counts and the workload
# Powers of two up to the allocation. The workload is one fixed batch of digits: the timing
# measures computation only, with no data loading in it.


# %%
def thread_counts(allocated: int) -> list[int]:
    """1, 2, 4, ... below the allocation, and the allocation itself."""
    counts = [1]
    while counts[-1] * 2 < allocated:
        counts.append(counts[-1] * 2)
    return counts + [allocated] if allocated > 1 else counts


def digits_batch(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` digit images (8x8, drawn with replacement) and their labels: the timed workload."""
    digits = load_digits()
    rows = np.random.default_rng(seed).integers(0, len(digits.images), size)
    images = torch.from_numpy((digits.images[rows] / 16.0).astype(np.float32)[:, None])
    return images, torch.from_numpy(digits.target[rows])


def digits_cnn() -> nn.Module:
    """A small CNN for 8x8 digits, wide enough that its convolutions give threads work."""
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


# %% [markdown]
# ## Timing
# Two untimed steps first: the first steps allocate memory and start the thread pool.


# %%
def measure_throughput(images: torch.Tensor, labels: torch.Tensor, steps: int, seed: int) -> float:
    """Images per second over `steps` training steps, after two untimed warm-up steps."""
    torch.manual_seed(seed)
    model = digits_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    for _ in range(2):
        step()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(images) / (time.perf_counter() - began)


# %% [markdown]
# ## The figure
# Throughput on the left, with the line a perfect scaling would follow; efficiency on the right.


# %%
def plot_scaling(rows: list[dict], allocated: int, path) -> None:
    """Throughput and parallel efficiency against the thread count."""
    fitting = [row for row in rows if not row["oversubscribed"]]
    over = [row for row in rows if row["oversubscribed"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot([r["threads"] for r in fitting], [r["images_per_s"] for r in fitting], "o-", label="within the allocation")
    left.plot(
        [r["threads"] for r in fitting],
        [fitting[0]["images_per_s"] * r["threads"] for r in fitting],
        ":",
        color="gray",
        label="perfect scaling",
    )
    left.plot([r["threads"] for r in over], [r["images_per_s"] for r in over], "x", color="crimson", markersize=9, label="oversubscribed")
    left.set(xlabel="threads", ylabel="images / s", title=f"Training throughput ({allocated} CPUs allocated)")
    left.legend()
    right.plot([r["threads"] for r in fitting], [r["efficiency"] for r in fitting], "o-")
    right.plot([r["threads"] for r in over], [r["efficiency"] for r in over], "x", color="crimson", markersize=9)
    right.axhline(1.0, color="gray", linestyle=":")
    right.set(xlabel="threads", ylabel="parallel efficiency", ylim=(0, 1.1), title="Efficiency per allocated core")
    for axis in (left, right):
        axis.set_xticks(sorted({r["threads"] for r in rows}))
    workshop.save_figure(figure, path)


if __name__ == "__main__":
    workshop.run_main(main)
