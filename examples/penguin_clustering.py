"""Clustering penguins: k-means and mean-shift

Clustering looks for groups in data without being told what the groups are. Here the data are
four measurements of 342 penguins (bill length and depth, flipper length, body mass); the
species is never shown to the algorithms. Afterwards we ask how well the groups they found
match the species, with the adjusted Rand index (ARI): 1 when the clusters are the species
(whatever the clusters are called), about 0 for labels drawn at random.

Two methods:

- k-means (scikit-learn), told to find k clusters;
- mean-shift, as the original workshop wrote it by hand in PyTorch: every point climbs, step by
  step, to the nearest peak of the data's density, smoothed with a Gaussian kernel whose width
  is the *bandwidth*; points that reach the same peak form a cluster. Nobody says how many
  clusters there are: the bandwidth decides. All points move at once (one matrix of kernel
  weights per step), on the GPU when there is one.
"""

# %%
import time

import matplotlib

matplotlib.use("Agg")  # write figures to files; a batch job has no screen
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import NullFormatter, StrMethodFormatter
from palmerpenguins import load_penguins
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import workshop

MEASUREMENTS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
# Bandwidths for the sweep, in standard deviations (the features are standardised).
BANDWIDTHS = [round(0.2 + 0.1 * step, 1) for step in range(15)]


# %% [markdown]
# ## The whole run
# `main()` reads the command line first, so a mistake there stops the run before any work;
# then data, k-means, mean-shift, the bandwidth sweep and the results, in that order.


# %%
def main() -> None:
    parser = workshop.make_parser(
        "Cluster penguins by their measurements with k-means and a hand-written mean-shift (PyTorch), "
        "and compare the clusters with the species.",
        default_out="results/penguin_clustering",
    )
    parser.add_argument(
        "--bandwidth",
        type=workshop.positive_float,
        help="width of mean-shift's Gaussian kernel, in standard deviations "
        "(default: Silverman's rule of thumb, about 0.46 for these data)",
    )
    parser.add_argument(
        "--iterations",
        type=workshop.positive_int,
        help="most mean-shift steps; each bandwidth stops earlier once its points stop moving "
        "(default: 500; 50 with --quick)",
    )
    parser.add_argument(
        "--clusters", type=workshop.positive_int, default=3, help="k, the number of clusters k-means looks for (default: 3)"
    )
    args = workshop.parse_args(parser)
    iterations = args.iterations or (50 if args.quick else 500)

    started = time.perf_counter()
    workshop.seed_everything(args.seed)
    threads = workshop.use_allocated_threads()
    # scikit-learn's k-means runs on OpenMP threads of its own: give it the same number.
    threadpool_limits(threads)
    device = workshop.pick_device()

    # The data: the four measurements; two penguins have none and are dropped. The species is
    # kept aside, only to judge the clusters afterwards.
    penguins = load_penguins()
    measured = penguins.dropna(subset=MEASUREMENTS)
    workshop.log(f"data: {len(penguins)} penguins, {len(penguins) - len(measured)} without measurements dropped")
    species = measured["species"].to_numpy()
    if args.clusters > len(measured):
        raise workshop.UsageError(f"--clusters {args.clusters} is more than the {len(measured)} penguins; choose fewer")
    # Standardise: otherwise body mass (thousands of grams) would outweigh everything measured in mm.
    scaler = StandardScaler()
    features = scaler.fit_transform(measured[MEASUREMENTS])

    # The reference: cluster labels drawn at random score an ARI of about 0.
    random_labels = np.random.default_rng(args.seed).integers(0, 3, len(species))
    ari_random = adjusted_rand_score(species, random_labels)
    workshop.log(f"reference: random labels, ARI {ari_random:.4f}")

    # k-means: the best of several random starts.
    kmeans = KMeans(n_clusters=args.clusters, n_init=3 if args.quick else 10, random_state=args.seed).fit(features)
    ari_kmeans = adjusted_rand_score(species, kmeans.labels_)
    workshop.log(f"k-means, k={args.clusters}: ARI {ari_kmeans:.4f}")

    # Mean-shift at the chosen bandwidth and, to show what the bandwidth does, at each of
    # BANDWIDTHS: all in one computation.
    points = torch.tensor(features, dtype=torch.float32, device=device)
    bandwidth = args.bandwidth or silverman_bandwidth(*features.shape)
    workshop.log(f"mean-shift bandwidth: {bandwidth:.3f} ({'--bandwidth' if args.bandwidth else 'Silverman rule of thumb'})")
    all_peaks, all_steps = mean_shift(points, [bandwidth, *BANDWIDTHS], iterations)
    peaks, steps = all_peaks[0], all_steps[0]
    labels = group_by_peak(peaks, bandwidth)
    clusters = int(labels.max()) + 1
    ari_mean_shift = adjusted_rand_score(species, labels)
    sizes = np.bincount(labels).tolist()
    workshop.log(f"mean-shift: {clusters} clusters (sizes {sizes}) after {steps} steps; ARI {ari_mean_shift:.4f}")
    sweep = [sweep_row(*row, species) for row in zip(BANDWIDTHS, all_peaks[1:], all_steps[1:])]

    plot_clusters(measured, species, kmeans, labels, peaks, scaler, ari_kmeans, ari_mean_shift, args.out / "clusters.png")
    plot_sweep(sweep, bandwidth, ari_kmeans, args.clusters, args.out / "bandwidth.png")

    metrics = {
        "ari_kmeans": ari_kmeans,
        "ari_mean_shift": ari_mean_shift,
        "ari_random_labels": ari_random,
        "bandwidth": bandwidth,
        "clusters_found": clusters,
        "cluster_sizes": sizes,
        "mean_shift_steps": steps,
        "max_iterations": iterations,
        "kmeans_clusters": args.clusters,
        "n_penguins": len(measured),
        "sweep": sweep,
        # Shown for the lesson only: picking this bandwidth would need the species we pretend not to have.
        "sweep_best_ari": max(sweep, key=lambda row: row["ari"]),
    }
    workshop.write_metrics(args.out, metrics, workshop.run_info(started, device=str(device), threads=threads))
    workshop.report_result(
        ari_kmeans=ari_kmeans, ari_mean_shift=ari_mean_shift, clusters=clusters, bandwidth=round(bandwidth, 3)
    )


# %% [markdown]
# ## Mean-shift, vectorised
# Each step, every point moves to the average of all data points, weighted by a Gaussian of
# its distance to them: near points count, far ones hardly. The data stay fixed, so each point
# climbs to a peak of the density and stays there. (The original workshop moved the points
# against each other, which keeps merging clusters the longer it runs.) The Gaussian's
# constant factor cancels in the weighted average, so it is left out.
#
# One more tensor dimension runs several bandwidths at once: the whole sweep is one
# computation of the same few operations, on larger tensors (what GPUs, and threads, like).


# %%
def mean_shift(points: torch.Tensor, bandwidths: list[float], iterations: int):
    """Move every point to its density peak, for each bandwidth at once.

    points: (n, d). Returns the peaks, (bandwidths, n, d), and the steps each bandwidth took.
    """
    width = torch.tensor(bandwidths, dtype=points.dtype, device=points.device).view(-1, 1, 1)
    data = points.expand(len(bandwidths), -1, -1)  # the same data for every bandwidth (no copy)
    shifted = data.clone()
    steps = torch.zeros(len(bandwidths), dtype=torch.long, device=points.device)
    moving = torch.ones(len(bandwidths), dtype=torch.bool, device=points.device)
    progress = workshop.Progress(total=iterations, unit="points", label="mean-shift step")
    moves_since_log = 0
    for step in range(1, iterations + 1):
        weights = torch.exp(-0.5 * (torch.cdist(shifted, data) / width) ** 2)  # (bandwidths, moving, data)
        moved = weights @ points / weights.sum(dim=2, keepdim=True)
        largest_move = (moved - shifted).norm(dim=2).amax(dim=1)  # per bandwidth
        # A bandwidth whose points have all stopped stays as it is.
        shifted = torch.where(moving.view(-1, 1, 1), moved, shifted)
        steps += moving
        moves_since_log += int(moving.sum()) * len(points)
        # Stopped: no point moved more than a ten-thousandth of the bandwidth in this step.
        moving &= largest_move >= 1e-4 * width.view(-1)
        done = not moving.any()
        if step % 10 == 0 or step == 1 or done or step == iterations:
            progress.step(
                step, items=moves_since_log, largest_move=float(largest_move.max()), moving=f"{int(moving.sum())}/{len(bandwidths)}"
            )
            moves_since_log = 0
        if done:
            break
    return shifted, steps.tolist()


def group_by_peak(peaks: torch.Tensor, bandwidth: float) -> np.ndarray:
    """Label the points: those whose peaks lie within half a bandwidth of each other share a cluster.

    One pass per cluster: take the first unlabelled point and label every unlabelled point
    near its peak.
    """
    labels = torch.full((len(peaks),), -1, dtype=torch.long, device=peaks.device)
    cluster = 0
    while (labels < 0).any():
        first = int((labels < 0).nonzero()[0])
        near = (torch.linalg.vector_norm(peaks - peaks[first], dim=1) < bandwidth / 2) & (labels < 0)
        labels[near] = cluster
        cluster += 1
    return labels.cpu().numpy()


def silverman_bandwidth(samples: int, dimensions: int) -> float:
    """Silverman's rule of thumb for a Gaussian kernel on standardised data.

    It does not look at the species, so choosing the bandwidth with it is fair; choosing the
    bandwidth with the best ARI would not be (the point of clustering is not having labels).
    """
    return (4 / (dimensions + 2)) ** (1 / (dimensions + 4)) * samples ** (-1 / (dimensions + 4))


def sweep_row(bandwidth: float, peaks: torch.Tensor, steps: int, species: np.ndarray) -> dict:
    """One bandwidth of the sweep: how many clusters, how close to the species."""
    labels = group_by_peak(peaks, bandwidth)
    row = {"bandwidth": bandwidth, "clusters": int(labels.max()) + 1, "ari": adjusted_rand_score(species, labels), "steps": steps}
    workshop.log(f"bandwidth {bandwidth:.1f}: {row['clusters']} clusters, ARI {row['ari']:.4f}, {steps} steps")
    return row


# %% [markdown]
# ## Figures


# %%
def plot_clusters(measured, species, kmeans, labels, peaks, scaler, ari_kmeans, ari_mean_shift, path) -> None:
    """Species, k-means clusters and mean-shift clusters, side by side, on the bill measurements."""
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.8), sharex=True, sharey=True)
    bill = measured[["bill_length_mm", "bill_depth_mm"]].to_numpy()
    # Centres and peaks back in millimetres; the first two features are the bill's.
    kmeans_centres = scaler.inverse_transform(kmeans.cluster_centers_)[:, :2]
    peak_of_cluster = np.stack([peaks.cpu().numpy()[labels == cluster][0] for cluster in range(labels.max() + 1)])
    mean_shift_peaks = scaler.inverse_transform(peak_of_cluster)[:, :2]
    panels = [
        ("species (never shown to the methods)", species, None),
        (f"k-means, k={kmeans.n_clusters}: ARI {ari_kmeans:.2f}", kmeans.labels_, kmeans_centres),
        (f"mean-shift, {labels.max() + 1} clusters: ARI {ari_mean_shift:.2f}", labels, mean_shift_peaks),
    ]
    for ax, (title, groups, centres) in zip(axes, panels):
        for group in np.unique(groups):
            chosen = groups == group
            name = group if isinstance(group, str) else f"cluster {group} ({chosen.sum()})"
            ax.scatter(bill[chosen, 0], bill[chosen, 1], s=16, alpha=0.75, label=name, zorder=3)
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
    workshop.save_figure(figure, path)


def plot_sweep(sweep: list[dict], bandwidth: float, ari_kmeans: float, k: int, path) -> None:
    """Number of clusters and ARI against the bandwidth."""
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
    bottom.axhline(ari_kmeans, color="tab:orange", linestyle="--", label=f"k-means, k={k}")
    bottom.set_ylabel("adjusted Rand index vs species")
    bottom.set_xlabel("bandwidth (standard deviations)")
    bottom.set_ylim(-0.05, 1.05)
    for ax in (top, bottom):
        ax.axvline(bandwidth, color="grey", linestyle="--", label=f"this run: {bandwidth:.2f}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    top.set_title("Narrow kernel: many small clusters; wide kernel: everything merges into one")
    workshop.save_figure(figure, path)


if __name__ == "__main__":
    workshop.run_main(main)
