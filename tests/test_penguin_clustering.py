"""examples/penguin_clustering.py, its science: k-means and mean-shift find groups that match the
species far better than random labels; mean-shift finds a handful of clusters, fewer as the
bandwidth widens; and its memory stays bounded when all its kernel weights at once would not fit.
The run itself (results written, same seed, bad input) is checked by test_example_contract.py;
this file reuses its quick run."""

import json

import pytest

from conftest import run_example
from example_contracts import BY_NAME


@pytest.fixture(scope="module")
def run(quick_run):
    return quick_run("penguin_clustering")


def run_with(tmp_path, *args: str) -> dict:
    """A quick run with more options; its metrics."""
    process = run_example(BY_NAME["penguin_clustering"], tmp_path, *args)
    assert process.returncode == 0, f"the run with {' '.join(args)} failed:\n{process.stderr[-2000:]}"
    return {"stdout": process.stdout, **json.loads((tmp_path / "out" / "metrics.json").read_text())}


def test_clusters_match_the_species_far_better_than_random_labels(run):
    # Random labels score an ARI of about 0. Quick mode scored about 0.79 for k-means and 0.81 for
    # mean-shift; the floor of 0.5 leaves room and is far out of reach of any guess.
    metrics = run.metrics
    assert abs(metrics["ari_random_labels"]) < 0.05, f"random labels should score an ARI of about 0, not {metrics['ari_random_labels']:.3f}"
    assert metrics["ari_kmeans"] >= 0.5, f"k-means scored an ARI of {metrics['ari_kmeans']:.3f}, below the floor of 0.5"
    assert metrics["ari_mean_shift"] >= 0.5, f"mean-shift scored an ARI of {metrics['ari_mean_shift']:.3f}, below the floor of 0.5"


def test_mean_shift_finds_a_handful_of_clusters_not_one_and_not_one_per_penguin(run):
    assert 2 <= run.metrics["clusters_found"] <= 10, f"mean-shift found clusters of sizes {run.metrics['cluster_sizes']}"


def test_a_wider_bandwidth_finds_fewer_clusters(run):
    sweep = sorted(run.metrics["sweep"], key=lambda row: row["bandwidth"])
    assert len(sweep) >= 5, "the sweep should try several bandwidths"
    assert sweep[0]["clusters"] > 3, "the narrowest bandwidth should split the penguins into many small clusters"
    assert sweep[-1]["clusters"] == 1, "the widest bandwidth should merge every penguin into one cluster"


def test_mean_shift_in_small_chunks_finds_the_same_clusters(run, tmp_path):
    # All the quick run's kernel weights take about 7 MB; with --chunk-mb 1 they are done in chunks.
    chunked = run_with(tmp_path, "--chunk-mb", "1")
    assert chunked["kernel_full_mb"] > 1, "the quick run's kernel weights should not fit in 1 MB, or nothing is chunked"
    for key in ("cluster_sizes", "mean_shift_steps", "ari_mean_shift", "sweep"):
        assert chunked[key] == run.metrics[key], f"in chunks of 1 MB, mean-shift's {key} changed: {chunked[key]} != {run.metrics[key]}"


def test_mean_shift_memory_stays_bounded_when_all_kernel_weights_would_not_fit(run, tmp_path):
    # Six copies of the penguins: 2052 points, so all kernel weights at once take 16 bandwidths x
    # 2052^2 x 4 bytes = 257 MB. One step in chunks of at most 8 MB must peak near the quick run
    # (whose weights take 7 MB), not 257 MB above it. (Without chunks it peaked about 210 MB above.)
    big = run_with(tmp_path, "--copies", "6", "--iterations", "1", "--chunk-mb", "8")
    full, peak, baseline = big["kernel_full_mb"], big["run"]["peak_memory_mb"], run.metrics["run"]["peak_memory_mb"]
    assert f"memory: all kernel weights at once would take {full:,.1f} MB" in big["stdout"], "the log should say what all at once would take"
    assert full > 200, f"all kernel weights of six copies should take over 200 MB, not {full:.0f} MB"
    assert peak < baseline + full / 2, f"the run peaked at {peak:.0f} MB, the quick run at {baseline:.0f} MB: chunks of 8 MB should not add {peak - baseline:.0f} MB"
