"""Benchmark: the two penguin examples (species with scikit-learn, clustering with k-means and
mean-shift), each in full mode and in quick mode.

All runs happen in a scratch copy of the repository (`make results` writes what the site
shows). Targets (issue 4): the species model gets at least 97% of
the held-out penguins right; each quick mode takes at most 60 s here, imports included.
"""

from bench.table import Row
from tools.full_runs import FullRuns

SECTION = "penguins"
EXAMPLES = ("penguin_species", "penguin_clustering")
QUICK_TARGET_S = 60
SPECIES_TARGET = 0.97


def rows() -> list[Row]:
    full, full_s, quick_s = {}, {}, {}
    with FullRuns() as runs:
        for example in EXAMPLES:
            run, quick = runs.script(example), runs.script(example, "--quick", out=f"results/{example}_quick")
            full[example], full_s[example], quick_s[example] = run.metrics, run.wall_s, quick.wall_s

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
