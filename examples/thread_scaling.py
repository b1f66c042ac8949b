"""Use what you asked for: training throughput at 1, 2, 4, ... threads

A Slurm job gets the CPU cores it asked for with `--cpus-per-task`, and no more: the other cores
of the node belong to other people's jobs. This script trains the digits CNN for a fixed number
of steps with 1, 2, 4, ... threads, up to the job's allocation, and measures the throughput
(images per second) and the parallel efficiency of each. It then runs with twice as many
threads as the allocation, as a script does that takes its thread count from the whole node:
oversubscribed, the threads wait for each other and the throughput drops.

The efficiency at n threads is throughput(n) / (n x throughput(1)): 1.0 means n threads are n
times as fast as one; 0.5 means half of the cores you asked for (and are charged for) are wasted.

Run it: python3 examples/thread_scaling.py --quick
"""

# %% [markdown]
# ## Options
# The batch each training step sees, how many steps one measurement times, and how many times
# each thread count is measured. In a notebook the defaults apply.

# %%
import os
import statistics
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import digits
import workshop

parser = workshop.make_parser("Training throughput at 1, 2, 4, ... threads, then oversubscribed.", default_out="results/thread_scaling")
parser.add_argument("--batch-size", type=workshop.at_least(1), default=256, help="images per step, at most 1257")
parser.add_argument("--steps", type=workshop.at_least(1), default=20, help="steps timed per measurement")
parser.add_argument("--repeats", type=workshop.at_least(1), default=5, help="rounds, each measuring every thread count")
args = workshop.parse_args(parser, quick_defaults={"batch_size": 32, "steps": 1, "repeats": 3})
started = time.perf_counter()
load_average_at_start = os.getloadavg()[0]  # before this run adds to it
workshop.log(f"batch of {args.batch_size} images, {args.steps} timed steps per measurement, {args.repeats} rounds")

# %% [markdown]
# ## The workload: one batch of digits
# The same batch of training digits for every step, already in memory: the timing measures the
# computation only. There is no data loading, so no `DataLoader` workers, which would only take
# cores from the threads.

# %%
train_images, train_labels = digits.load_digits_split()["train"]
if args.batch_size > len(train_images):
    workshop.refuse(
        f"--batch-size {args.batch_size} is more than the {len(train_images)} training images; choose at most {len(train_images)}"
    )
images, labels = train_images[: args.batch_size], train_labels[: args.batch_size]
workshop.log(f"one batch: images {tuple(images.shape)}, how many of each digit: {labels.bincount(minlength=10).tolist()}")

# %% [markdown]
# ## The model, and one measurement
# Every measurement trains a fresh copy of the digits CNN, from the same seed, for the same
# steps: only `torch.set_num_threads` changes. One untimed step comes first, since the first
# step allocates memory and starts the thread pool.


# %%
def fresh_model() -> torch.nn.Module:
    torch.manual_seed(args.seed)
    return digits.small_cnn()


def images_per_second(threads: int) -> float:
    """Train a fresh model for `args.steps` steps with `threads` threads; images per second."""
    torch.set_num_threads(threads)
    model = fresh_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def train_step() -> None:
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    train_step()
    began = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    return args.steps * len(images) / (time.perf_counter() - began)


workshop.log(f"model: digits.small_cnn() with {sum(p.numel() for p in fresh_model().parameters()):,} parameters")

# %% [markdown]
# ## How many cores this job has
# Slurm puts the number of cores the job asked for (`--cpus-per-task`) in `SLURM_CPUS_PER_TASK`;
# the operating system knows which cores this process may run on (`os.sched_getaffinity`).
# Neither is `os.cpu_count()`, which counts every core of the node, most of them other jobs'.
# `workshop.use_allocated_threads()` gives the allocation to `torch.set_num_threads` and logs it.
#
# The load average is the number of processes that wanted a core, averaged over the last
# minute. Above the number of cores, other work competes with this measurement: it is recorded
# with the results, so that nobody mistakes a busy machine's numbers for the code's.

# %%
slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK", "(not set: not in a Slurm job)")
may_run_on = os.sched_getaffinity(0)
workshop.log(f"SLURM_CPUS_PER_TASK={slurm_cpus}; this process may run on {len(may_run_on)} CPUs")
workshop.log(f"load average at the start {load_average_at_start:.2f} (processes that wanted a core, over the last minute)")
allocated = workshop.use_allocated_threads()

# %% [markdown]
# ## The thread counts
# Powers of two below the allocation, the allocation itself, then twice the allocation: two
# threads per core, as a script gets that starts more threads than it has cores (a thread count
# taken from `os.cpu_count()` on a node shared with other jobs gives many more).

# %%
thread_counts = [1]
while thread_counts[-1] * 2 < allocated:
    thread_counts.append(thread_counts[-1] * 2)
if allocated > 1:
    thread_counts.append(allocated)
thread_counts.append(2 * allocated)
workshop.log(f"thread counts: {thread_counts} (the last one oversubscribed)")

# %% [markdown]
# ## Measure every count in turn, several times
# Other work on the machine can make a measurement slower, never faster. Measured one count
# after the other, a busy minute would slow one count only and bend the curve; measured in
# rounds, each round timing every count once, it slows them alike. Each count's median over the
# rounds is its result, and the slowest and fastest round show how much the machine moved it.

# %%
def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


rates = {threads: [] for threads in thread_counts}
progress = workshop.Progress(total=args.repeats, label="round")
workshop.log("images per second at each thread count:")
for round_number in range(1, args.repeats + 1):
    for threads in thread_counts:
        rates[threads].append(images_per_second(threads))
    progress.step(round_number, **{plural(threads, "thread"): round(rates[threads][-1]) for threads in thread_counts})
torch.set_num_threads(allocated)

# %% [markdown]
# ## Speedup and parallel efficiency
# The speedup at n threads is the median throughput over that of one thread; the efficiency is
# the speedup per core. The oversubscribed threads share the allocation's cores, so their
# efficiency is per allocated core.

# %%
one_thread = statistics.median(rates[1])
table = []
for threads, measured in rates.items():
    median = statistics.median(measured)
    speedup = median / one_thread
    table.append(
        {
            "threads": threads,
            "oversubscribed": threads > allocated,
            "images_per_s": median,
            "images_per_s_slowest": min(measured),
            "images_per_s_fastest": max(measured),
            "spread": (max(measured) - min(measured)) / median,  # 0.1: the rounds differed by 10% of the median
            "speedup": speedup,
            "efficiency": speedup / min(threads, allocated),
        }
    )
    workshop.log(
        f"{plural(threads, 'thread'):>11}: {median:7.0f} images/s (rounds from {min(measured):.0f} to {max(measured):.0f}), "
        f"speedup {speedup:.2f}, efficiency {table[-1]['efficiency']:.0%}{'  oversubscribed' if threads > allocated else ''}"
    )

# %% [markdown]
# ## The figure
# Throughput on the left, each point the median with a bar from the slowest to the fastest
# round, and the line that perfect scaling would follow; efficiency on the right.

# %%
within = [row for row in table if not row["oversubscribed"]]
beyond = [row for row in table if row["oversubscribed"]]
figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
for rows, style, color, label in ((within, "o-", "tab:blue", "within the allocation"), (beyond, "x", "crimson", "oversubscribed")):
    medians = [row["images_per_s"] for row in rows]
    spread = [
        [row["images_per_s"] - row["images_per_s_slowest"] for row in rows],
        [row["images_per_s_fastest"] - row["images_per_s"] for row in rows],
    ]
    left.errorbar([row["threads"] for row in rows], medians, yerr=spread, fmt=style, color=color, capsize=3, label=label)
    right.plot([row["threads"] for row in rows], [row["efficiency"] for row in rows], style, color=color)
left.plot([row["threads"] for row in within], [one_thread * row["threads"] for row in within], ":", color="gray", label="perfect scaling")
left.set(xlabel="threads", ylabel="images / s", title=f"Training throughput ({allocated} CPUs allocated)")
left.legend()
right.axhline(1.0, color="gray", linestyle=":")
right.set(xlabel="threads", ylabel="parallel efficiency", ylim=(0, 1.1), title="Efficiency per allocated core")
for axis in (left, right):
    axis.set_xticks(thread_counts)
workshop.save_figure(figure, args.out / "thread_scaling.png")

# %% [markdown]
# ## Results
# The numbers the page quotes, with the load average at the start and the largest spread, by
# which to judge them.

# %%
at_allocation = within[-1]
metrics = {
    "allocated_threads": allocated,
    "slurm_cpus_per_task": os.environ.get("SLURM_CPUS_PER_TASK"),
    "affinity_cpus": len(may_run_on),
    "load_average_at_start": load_average_at_start,
    "batch_size": args.batch_size,
    "steps": args.steps,
    "repeats": args.repeats,
    "thread_counts": thread_counts,
    "table": table,
    "largest_spread": max(row["spread"] for row in table),
    "images_per_s_1_thread": one_thread,
    "images_per_s_allocation": at_allocation["images_per_s"],
    "efficiency_at_allocation": at_allocation["efficiency"],
    # the speed with two threads per core, as a share of the speed with one per core
    "oversubscribed_relative_speed": table[-1]["images_per_s"] / at_allocation["images_per_s"],
}
workshop.write_metrics(args.out, metrics, started, threads=allocated)
workshop.report_result(
    threads=allocated,
    images_per_s_1_thread=one_thread,
    images_per_s_allocation=at_allocation["images_per_s"],
    efficiency=at_allocation["efficiency"],
)
