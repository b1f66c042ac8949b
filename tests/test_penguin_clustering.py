"""examples/penguin_clustering.py: in quick mode k-means and mean-shift find groups that match the
species far better than random labels, the bandwidth changes how many groups mean-shift finds,
the same seed gives the same numbers, and bad input is refused with one line and exit status 2,
leaving earlier results alone.

Each run is a subprocess with one thread (SLURM_CPUS_PER_TASK=1): the tests share two cores.
"""

import json
import re
import subprocess

import pytest

from conftest import REPO, assert_refused_in_one_line, run_script, unwritable_folder

SCRIPT = REPO / "examples" / "penguin_clustering.py"


def run_example(*args: str) -> subprocess.CompletedProcess:
    return run_script(SCRIPT, *args)


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Two quick runs with the same seed: (process, metrics, out folder) for each."""
    runs = []
    for attempt in ("first", "second"):
        out = tmp_path_factory.mktemp(f"penguin_clustering_{attempt}")
        process = run_example("--quick", "--seed", "0", "--out", str(out))
        assert process.returncode == 0, f"quick run failed:\n{process.stdout[-2000:]}\n{process.stderr[-2000:]}"
        runs.append((process, json.loads((out / "metrics.json").read_text()), out))
    return runs


def test_penguin_clusters_match_species_far_better_than_random_labels_in_quick_mode(quick_runs):
    # Random labels score an ARI of about 0 (|ARI| < 0.01 over seeds 0-5). Quick mode scored
    # 0.79-0.80 for k-means and 0.81 for mean-shift over seeds 0-5 (mean-shift uses no random
    # numbers); the floor of 0.5 leaves room and is far out of reach of any guess.
    _, metrics, _ = quick_runs[0]
    assert abs(metrics["ari_random_labels"]) < 0.05, "the random-label reference should score about 0"
    assert metrics["ari_kmeans"] >= 0.5, f"k-means ARI {metrics['ari_kmeans']:.3f} is below the floor of 0.5"
    assert metrics["ari_mean_shift"] >= 0.5, f"mean-shift ARI {metrics['ari_mean_shift']:.3f} is below the floor of 0.5"


def test_mean_shift_finds_a_handful_of_clusters_not_one_and_not_one_per_penguin(quick_runs):
    _, metrics, _ = quick_runs[0]
    assert 2 <= metrics["clusters_found"] <= 10, metrics["cluster_sizes"]
    assert sum(metrics["cluster_sizes"]) == metrics["n_penguins"] == 342


def test_wider_mean_shift_bandwidth_finds_fewer_clusters(quick_runs):
    _, metrics, _ = quick_runs[0]
    sweep = sorted(metrics["sweep"], key=lambda row: row["bandwidth"])
    assert len(sweep) >= 5, "the sweep should try several bandwidths"
    assert sweep[0]["clusters"] > 3, "the narrowest bandwidth should split the penguins into many small clusters"
    assert sweep[-1]["clusters"] == 1, "the widest bandwidth should merge every penguin into one cluster"
    assert sweep[-1]["ari"] == pytest.approx(0.0, abs=1e-9), "one cluster for everyone says nothing about species"


def test_penguin_clustering_writes_figures_metrics_and_ends_with_the_result_line(quick_runs):
    process, metrics, out = quick_runs[0]
    assert process.stdout.strip().splitlines()[-1].startswith("result: ari_kmeans="), process.stdout[-500:]
    for figure in ("clusters.png", "bandwidth.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure} is not a PNG"
    assert metrics["run"]["threads"] == 1, "the run should use the one CPU SLURM_CPUS_PER_TASK gave it"
    assert re.search(r"^device: (cuda|cpu \(.*running on the CPU\))", process.stdout, re.MULTILINE), "no device line"
    assert "mean-shift step 1/50" in process.stdout, "mean-shift should print progress lines"
    for row in metrics["sweep"]:
        assert f"\nbandwidth {row['bandwidth']:.1f}: {row['clusters']} clusters" in process.stdout, "one line per bandwidth"


def test_penguin_clustering_same_seed_gives_the_same_metrics(quick_runs):
    (_, first, _), (_, second, _) = quick_runs
    first.pop("run"), second.pop("run")
    assert first == second


BAD_INPUTS = {
    "zero_bandwidth": (["--bandwidth", "0"], "--bandwidth"),
    "negative_bandwidth": (["--bandwidth", "-0.5"], "--bandwidth"),
    "non_numeric_bandwidth": (["--bandwidth", "wide"], "--bandwidth"),
    "negative_iterations": (["--iterations", "-3"], "--iterations"),
    "non_numeric_iterations": (["--iterations", "2.5"], "--iterations"),
    "zero_clusters": (["--clusters", "0"], "--clusters"),
    "more_clusters_than_penguins": (["--clusters", "400"], "--clusters"),
    "unknown_option": (["--epochs", "3"], "unrecognized arguments"),
}


@pytest.mark.parametrize("args, named", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_penguin_clustering_refuses_bad_input_with_one_line_and_exit_status_2(args, named, tmp_path):
    process = run_example("--quick", "--out", str(tmp_path), *args)
    assert_refused_in_one_line(process, named)


def test_penguin_clustering_refuses_an_out_folder_it_cannot_create(tmp_path):
    process = run_example("--quick", "--out", str(unwritable_folder(tmp_path)))
    assert_refused_in_one_line(process, "cannot write to --out")


def test_penguin_clustering_failing_run_leaves_earlier_results_untouched(tmp_path):
    earlier = '{"ari_kmeans": 0.79, "from": "an earlier run"}\n'
    (tmp_path / "metrics.json").write_text(earlier)
    # This mistake is found only after the data are loaded, not by the command-line parser.
    process = run_example("--quick", "--out", str(tmp_path), "--clusters", "400")
    assert process.returncode == 2, process.stderr
    assert (tmp_path / "metrics.json").read_text() == earlier
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json"], "the failed run left files behind"
