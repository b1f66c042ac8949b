"""Benchmark: the two penguin examples (species with scikit-learn, clustering with k-means and
mean-shift), each in full mode and in quick mode.

The full runs write into docs/results/<example>/, the numbers and figures the site shows; the
quick runs go to a temporary folder. Targets (issue 4): the species model gets at least 97% of
the held-out penguins right; each quick mode takes at most 60 s here, imports included.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.table import Row

REPO = Path(__file__).resolve().parent.parent
SECTION = "penguins"
EXAMPLES = ("penguin_species", "penguin_clustering")
QUICK_TARGET_S = 60
SPECIES_TARGET = 0.97


def run(example: str, out: Path, *args: str) -> tuple[dict, float]:
    """Run examples/<example>.py to the end; return its metrics.json and the wall time in seconds."""
    environment = {key: value for key, value in os.environ.items() if key != "WORKSHOP_QUICK"}
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, f"examples/{example}.py", "--out", str(out), *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{example} {' '.join(args)} failed ({process.returncode}):\n{process.stderr[-2000:]}")
    return json.loads((REPO / out / "metrics.json").read_text()), seconds


def rows() -> list[Row]:
    full, full_s, quick_s = {}, {}, {}
    for example in EXAMPLES:
        # Relative to the repository, so metrics.json records the command as a reader would type it.
        full[example], full_s[example] = run(example, Path("docs", "results", example))
        with tempfile.TemporaryDirectory() as scratch:
            _, quick_s[example] = run(example, Path(scratch), "--quick")

    species, clustering = full["penguin_species"], full["penguin_clustering"]
    table = [
        Row(
            SECTION,
            f"species: held-out accuracy ({species['chosen_model']}, {species['n_test']} penguins)",
            f"{species['test_accuracy']:.2%}",
            f">= {SPECIES_TARGET:.0%}",
            species["test_accuracy"] >= SPECIES_TARGET,
        ),
        Row(SECTION, "species: majority-class baseline (reference)", f"{species['baseline_accuracy']:.2%}"),
        Row(SECTION, "clustering: ARI k-means (k=3) vs species", f"{clustering['ari_kmeans']:.3f}"),
        Row(
            SECTION,
            f"clustering: ARI mean-shift (bandwidth {clustering['bandwidth']:.2f}, {clustering['clusters_found']} clusters)",
            f"{clustering['ari_mean_shift']:.3f}",
        ),
        Row(SECTION, "clustering: ARI random labels (reference)", f"{clustering['ari_random_labels']:.3f}"),
    ]
    for example in EXAMPLES:
        threads = full[example]["run"]["threads"]
        table.append(Row(SECTION, f"{example}: full run, wall time ({threads} thread{'s' if threads != 1 else ''})", f"{full_s[example]:.1f} s"))
        table.append(
            Row(
                SECTION,
                f"{example}: quick run, wall time",
                f"{quick_s[example]:.1f} s",
                f"<= {QUICK_TARGET_S} s",
                quick_s[example] <= QUICK_TARGET_S,
            )
        )
    return table
