"""Clustering penguins: k-means and mean-shift

Clustering looks for groups in data without being told what the groups are. Here the data are
four measurements of the Palmer penguins (bill length and depth, flipper length, body mass); the
species is never shown to the algorithms. Afterwards we ask how well the groups they found match
the species, with the adjusted Rand index (ARI): 1 when the clusters are the species (whatever
the clusters are called), about 0 for labels drawn at random.

Two methods: k-means from scikit-learn, told how many clusters to find; and mean-shift, written
by hand in PyTorch as the original workshop did, which finds the number itself and runs on the
GPU when there is one.
"""

# %% [markdown]
# ## The options
# Every option has a default, so the notebook runs as it is. `--quick` (the tests' short run)
# caps mean-shift at fewer steps; an option you give yourself always wins. A mistake on the
# command line stops the run here, before any work.

# %%
import time

import workshop

parser = workshop.make_parser(
    "Cluster penguins by their measurements with k-means and a hand-written mean-shift (PyTorch), "
    "and compare the clusters with the species.",
    default_out="results/penguin_clustering",
)
parser.add_argument("--clusters", type=workshop.at_least(1), default=3, help="k, the clusters k-means looks for")
parser.add_argument("--bandwidth", type=workshop.positive_float, help="mean-shift's kernel width, in standard deviations (default: Silverman's rule)")
parser.add_argument("--iterations", type=workshop.at_least(1), default=500, help="most mean-shift steps")
parser.add_argument("--copies", type=workshop.at_least(1), default=1, help="copies of the penguins, each with a little noise")
parser.add_argument("--chunk-mb", type=workshop.positive_float, default=512, help="most MB of kernel weights at a time")
args = workshop.parse_args(parser, quick_defaults={"iterations": 50})
started = time.perf_counter()
workshop.log(
    f"options: --clusters {args.clusters} --bandwidth {args.bandwidth or 'Silverman'} --iterations {args.iterations} "
    f"--copies {args.copies} --chunk-mb {args.chunk_mb:g} --seed {args.seed} --out {args.out}"
)

# %% [markdown]
# ## The data
# Four measurements per penguin; penguins without any are dropped. The species is kept
# aside, only to judge the clusters afterwards. Standardising gives each measurement mean 0 and
# spread 1: unscaled, body mass (thousands of grams) would outweigh everything in millimetres.

# %%
import numpy as np
from palmerpenguins import load_penguins
from sklearn.preprocessing import StandardScaler

MEASUREMENTS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]

penguins = load_penguins()
measured = penguins.dropna(subset=MEASUREMENTS)
workshop.log(f"data: {len(penguins)} penguins, {len(penguins) - len(measured)} without measurements dropped")
print(measured[MEASUREMENTS + ["species"]].head().to_string())
scaler = StandardScaler()
features = scaler.fit_transform(measured[MEASUREMENTS])
species = measured["species"].to_numpy()

# %% [markdown]
# With `--copies N` every penguin comes N times, each copy moved by a little noise (a twentieth of
# a standard deviation): the same groups, N times the points, to see how the methods scale.

# %%
NOISE = 0.05  # standard deviations

rng = np.random.default_rng(args.seed)
if args.copies > 1:
    noisy_copies = [features + rng.normal(0, NOISE, features.shape) for _ in range(args.copies - 1)]
    features = np.concatenate([features, *noisy_copies])
    species = np.tile(species, args.copies)
workshop.log(f"points: {features.shape[0]} x {features.shape[1]} standardised measurements ({args.copies} x {len(measured)} penguins)")
if args.clusters > len(features):
    workshop.refuse(f"--clusters {args.clusters} is more than the {len(features)} points; choose fewer")

# %% [markdown]
# ## Threads and device
# PyTorch (mean-shift) and scikit-learn's k-means (OpenMP) each start one thread per core they
# can see, which can be more than the job was given (a node that does not pin jobs to their
# cores, a Jupyter session on a shared machine): then the threads queue for the job's few cores.
# Both get the allocation's number, `SLURM_CPUS_PER_TASK`. Mean-shift runs on the GPU if there
# is one; the log says which.

# %%
from threadpoolctl import threadpool_limits

threads = workshop.use_allocated_threads()
threadpool_limits(limits=threads)
device = workshop.pick_device()

# %% [markdown]
# ## The reference: random labels
# Cluster labels drawn at random score an ARI of about 0. A method is worth what it adds to that.

# %%
from sklearn.metrics import adjusted_rand_score

ari_random = adjusted_rand_score(species, rng.integers(0, 3, len(species)))
workshop.log(f"reference: random labels, ARI {ari_random:.4f}")

# %% [markdown]
# ## k-means
# k-means places k centres and moves each to the mean of the points nearest to it, until they
# settle; `n_init` starts it from several random places and keeps the best.

# %%
from sklearn.cluster import KMeans

kmeans = KMeans(n_clusters=args.clusters, n_init=10, random_state=args.seed).fit(features)
ari_kmeans = adjusted_rand_score(species, kmeans.labels_)
workshop.log(f"k-means, k={args.clusters}: ARI {ari_kmeans:.4f}, cluster sizes {np.bincount(kmeans.labels_).tolist()}")

# %% [markdown]
# ## Mean-shift: the bandwidth
# Mean-shift is told no number of clusters, only how far each point looks around: the width of
# its Gaussian kernel, the *bandwidth*. Silverman's rule of thumb picks one from the number of
# points and of measurements alone, without looking at the species; picking the bandwidth with
# the best ARI would use the very labels clustering is meant to do without. The rule counts the
# penguins, not the copies: copies add no new penguins.
#
# To see what the bandwidth does, a sweep of other bandwidths runs alongside this one.

# %%
SWEEP = [round(0.2 + 0.1 * step, 1) for step in range(15)]  # standard deviations

samples, dimensions = len(measured), len(MEASUREMENTS)
silverman = (4 / (dimensions + 2)) ** (1 / (dimensions + 4)) * samples ** (-1 / (dimensions + 4))
bandwidth = args.bandwidth or silverman
bandwidths = [bandwidth, *SWEEP]
workshop.log(f"mean-shift bandwidth: {bandwidth:.3f} ({'--bandwidth' if args.bandwidth else 'Silverman rule of thumb'})")
workshop.log(f"sweep: {len(SWEEP)} more bandwidths, {SWEEP[0]} to {SWEEP[-1]}")

# %% [markdown]
# ## Mean-shift: memory
# Each step, every point is compared with every data point, for every bandwidth: a stack of
# kernel weights of bandwidths x points x points float32 numbers. For a few hundred penguins
# that is a few megabytes; for a hundred times as many points it is ten thousand times as much,
# tens of gigabytes. So the moving points are taken in chunks of rows, as many as
# `--chunk-mb` holds: more points mean more chunks, never more memory.

# %%
FLOAT32_BYTES = 4

row_bytes = len(bandwidths) * len(features) * FLOAT32_BYTES  # one moving point, every bandwidth
full_mb = row_bytes * len(features) / 2**20
chunk_bytes = args.chunk_mb * 2**20
if row_bytes > chunk_bytes:
    workshop.refuse(
        f"--chunk-mb {args.chunk_mb:g} cannot hold even one row of mean-shift's kernel weights "
        f"({len(bandwidths)} bandwidths x {len(features)} points x 4 bytes = {row_bytes / 2**20:.3g} MB); "
        f"give --chunk-mb {row_bytes / 2**20:.3g} or more"
    )
first_rows = min(int(chunk_bytes // row_bytes), len(features))
workshop.log(
    f"memory: all kernel weights at once would take {full_mb:,.1f} MB; the first steps take {first_rows} rows at a time, "
    f"{first_rows * row_bytes / 2**20:,.1f} MB (--chunk-mb {args.chunk_mb:g})"
)

# %% [markdown]
# ## Mean-shift, all points at once
# Each step, every point moves to the average of the data points, weighted by a Gaussian of its
# distance to them: near points count, far ones hardly. The data stay where they are, so each
# point climbs to a peak of the data's density and stops there. (The original workshop moved the
# points against each other, "blurring" mean-shift, which keeps merging clusters the longer it
# runs, so its answer depends on the number of steps.) `torch.cdist` gives the distances from a chunk of moving points to all data points at
# once, and one matrix product does every average. The Gaussian's constant factor cancels in the
# average, so it is left out.

# %%
import torch


def shift(moving_points: torch.Tensor, data: torch.Tensor, width: torch.Tensor, chunk_bytes: float) -> torch.Tensor:
    """One mean-shift step: every moving point to the kernel-weighted mean of the data.

    moving_points: (bandwidths, points, measurements); data: (points, measurements);
    width: (bandwidths, 1, 1). The moving points go in chunks of rows that fit in chunk_bytes.
    """
    rows_per_chunk = int(chunk_bytes // (len(width) * len(data) * FLOAT32_BYTES))  # 1 or more: checked above
    stacked_data = data.expand(len(width), -1, -1)  # the same data for every bandwidth (no copy)
    moved = torch.empty_like(moving_points)
    for start in range(0, moving_points.shape[1], rows_per_chunk):
        rows = slice(start, start + rows_per_chunk)
        distances = torch.cdist(moving_points[:, rows], stacked_data)  # (bandwidths, rows, points)
        # In place: the chunk's one large tensor turns from distances into weights, without copies.
        weights = distances.div_(width).square_().mul_(-0.5).exp_()
        moved[:, rows] = weights @ data / weights.sum(dim=2, keepdim=True)
    return moved


points = torch.tensor(features, dtype=torch.float32, device=device)
print(f"mean-shift's input: a {points.dtype} tensor of shape {tuple(points.shape)} on {points.device}")

# %% [markdown]
# ## Mean-shift: the steps
# All bandwidths move together, one more dimension in front. A bandwidth stops when none of its
# points moved more than a ten-thousandth of its width in a step; it then drops out, and the
# others go on until they stop too or `--iterations` is reached. One line every ten steps.

# %%
width = torch.tensor(bandwidths, dtype=torch.float32, device=device).view(-1, 1, 1)
shifted = points.expand(len(bandwidths), -1, -1).clone()  # every bandwidth starts from the data
steps = torch.zeros(len(bandwidths), dtype=torch.long, device=device)
moving = torch.ones(len(bandwidths), dtype=torch.bool, device=device)
progress = workshop.Progress(total=args.iterations, unit="weights", label="mean-shift step")
weights_since_log = 0
mean_shift_started = time.perf_counter()
for step in range(1, args.iterations + 1):
    active = moving.nonzero().view(-1)
    moved = shift(shifted[active], points, width[active], chunk_bytes)
    largest_move = (moved - shifted[active]).norm(dim=2).amax(dim=1)
    shifted[active] = moved
    steps[active] += 1
    moving[active] = largest_move >= 1e-4 * width[active].view(-1)
    weights_since_log += len(active) * len(points) ** 2
    done = not moving.any()
    if step % 10 == 0 or step == 1 or done or step == args.iterations:
        still = f"{int(moving.sum())}/{len(bandwidths)}"
        progress.step(step, items=weights_since_log, largest_move=float(largest_move.max()), bandwidths_moving=still)
        weights_since_log = 0
    if done:
        break
mean_shift_seconds = time.perf_counter() - mean_shift_started  # moving.any() waited for the GPU every step
mean_shift_ms_per_step = 1000 * mean_shift_seconds / step

# %% [markdown]
# ## Mean-shift: from peaks to clusters
# Points whose peaks lie within half a bandwidth of each other share a cluster: take the first
# point without a label, label every unlabelled point near its peak, repeat.

# %%


def group_by_peak(peaks: torch.Tensor, bandwidth: float) -> np.ndarray:
    """Cluster labels 0, 1, ...: one per group of peaks within half a bandwidth of each other."""
    labels = torch.full((len(peaks),), -1, dtype=torch.long, device=peaks.device)
    cluster = 0
    while (labels < 0).any():
        first = int((labels < 0).nonzero()[0])
        near = (torch.linalg.vector_norm(peaks - peaks[first], dim=1) < bandwidth / 2) & (labels < 0)
        labels[near] = cluster
        cluster += 1
    return labels.cpu().numpy()


labels = group_by_peak(shifted[0], bandwidth)
clusters = int(labels.max()) + 1
ari_mean_shift = adjusted_rand_score(species, labels)
sizes = np.bincount(labels).tolist()
workshop.log(f"mean-shift: {clusters} clusters (sizes {sizes}) after {int(steps[0])} steps; ARI {ari_mean_shift:.4f}")

# %% [markdown]
# And the same for every bandwidth of the sweep.

# %%
sweep = []
for index, sweep_bandwidth in enumerate(SWEEP, start=1):
    sweep_labels = group_by_peak(shifted[index], sweep_bandwidth)
    row = {
        "bandwidth": sweep_bandwidth,
        "clusters": int(sweep_labels.max()) + 1,
        "ari": adjusted_rand_score(species, sweep_labels),
        "steps": int(steps[index]),
    }
    sweep.append(row)
    workshop.log(f"bandwidth {sweep_bandwidth:.1f}: {row['clusters']} clusters, ARI {row['ari']:.4f}, {row['steps']} steps")

# %% [markdown]
# ## Clusters against species
# On the bill measurements (both methods clustered on all four). Cluster numbers are arbitrary:
# "cluster 0" of k-means is not "cluster 0" of mean-shift, and neither means Adelie.

# %%
import matplotlib.pyplot as plt

bill = scaler.inverse_transform(features)[:, :2]  # back in millimetres; the first two are the bill's
kmeans_centres = scaler.inverse_transform(kmeans.cluster_centers_)[:, :2]
peaks = shifted[0].cpu().numpy()
mean_shift_peaks = scaler.inverse_transform(np.stack([peaks[labels == cluster][0] for cluster in range(clusters)]))[:, :2]
panels = [
    ("species (never shown to the methods)", species, None),
    (f"k-means, k={args.clusters}: ARI {ari_kmeans:.2f}", kmeans.labels_, kmeans_centres),
    (f"mean-shift, {clusters} clusters: ARI {ari_mean_shift:.2f}", labels, mean_shift_peaks),
]
figure, axes = plt.subplots(1, 3, figsize=(15, 4.8), sharex=True, sharey=True)
for ax, (title, groups, centres) in zip(axes, panels):
    for group in np.unique(groups):
        in_group = groups == group
        name = group if isinstance(group, str) else f"cluster {group} ({in_group.sum()})"
        ax.scatter(bill[in_group, 0], bill[in_group, 1], s=16, alpha=0.75, label=name, zorder=3)
    if centres is not None:  # drawn under the points, so a one-penguin cluster stays visible
        ax.scatter(centres[:, 0], centres[:, 1], marker="X", s=140, c="black", label="centre / peak", zorder=2)
    ax.set_title(title)
    ax.set_xlabel("bill length (mm)")
    ax.grid(alpha=0.3)
    if len(np.unique(groups)) <= 10:  # a narrow bandwidth can find dozens: no legend then
        ax.legend(fontsize=8, loc="lower left")
axes[0].set_ylabel("bill depth (mm)")
figure.suptitle(
    "Clusters against species, shown on the bill (clustered on all four measurements); "
    "cluster numbers are arbitrary, so colours need not match"
)
workshop.save_figure(figure, args.out / "clusters.png")

# %% [markdown]
# ## What the bandwidth does
# Narrow: every bump in the data is a peak of its own, many small clusters. Wide: one hill, one
# cluster for everyone, which says nothing (ARI 0).

# %%
from matplotlib.ticker import NullFormatter, StrMethodFormatter

widths = [row["bandwidth"] for row in sweep]
figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
top.plot(widths, [row["clusters"] for row in sweep], "o-")
top.axhline(3, color="grey", linestyle=":", label="3 species")
top.set_yscale("log")
top.set_yticks([tick for tick in (1, 2, 3, 5, 10, 20, 50, 100) if tick <= max(row["clusters"] for row in sweep)])
top.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))  # 1, 10 rather than 10^0, 10^1
top.yaxis.set_minor_formatter(NullFormatter())
top.set_ylabel("clusters found (log scale)")
bottom.plot(widths, [row["ari"] for row in sweep], "o-", label="mean-shift")
bottom.axhline(ari_kmeans, color="tab:orange", linestyle="--", label=f"k-means, k={args.clusters}")
bottom.set_ylabel("adjusted Rand index vs species")
bottom.set_xlabel("bandwidth (standard deviations)")
bottom.set_ylim(-0.05, 1.05)
for ax in (top, bottom):
    ax.axvline(bandwidth, color="grey", linestyle="--", label=f"this run: {bandwidth:.2f}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
top.set_title("Narrow kernel: many small clusters; wide kernel: everything merges into one")
workshop.save_figure(figure, args.out / "bandwidth.png")

# %% [markdown]
# ## The results
# `metrics.json` holds the numbers the page shows, and where and how the run ran, with the
# run's peak memory: the GPU's (what PyTorch allocated) or the process's.

# %%
import resource

if device.type == "cuda":
    peak_memory_mb = torch.cuda.max_memory_allocated() / 2**20
else:
    peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux counts kilobytes
workshop.log(f"peak memory: {peak_memory_mb:,.0f} MB ({device.type})")
metrics = {
    "ari_kmeans": ari_kmeans,
    "ari_mean_shift": ari_mean_shift,
    "ari_random_labels": ari_random,
    "bandwidth": bandwidth,
    "clusters_found": clusters,
    "cluster_sizes": sizes,
    "mean_shift_steps": int(steps[0]),
    "max_iterations": args.iterations,
    "kmeans_clusters": args.clusters,
    "n_penguins": len(measured),
    "copies": args.copies,
    "n_points": len(features),
    "kernel_full_mb": full_mb,
    "chunk_mb": args.chunk_mb,
    "mean_shift_seconds": mean_shift_seconds,
    "mean_shift_ms_per_step": mean_shift_ms_per_step,
    "sweep": sweep,
    # Shown for the lesson only: picking this bandwidth would need the species we pretend not to have.
    "sweep_best_ari": max(sweep, key=lambda row: row["ari"]),
}
workshop.write_metrics(args.out, metrics, started, device=device, threads=threads, peak_memory_mb=round(peak_memory_mb, 1))
workshop.report_result(ari_kmeans=ari_kmeans, ari_mean_shift=ari_mean_shift, clusters=clusters, bandwidth=round(bandwidth, 3))
