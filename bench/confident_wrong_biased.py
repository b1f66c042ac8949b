"""Benchmark: the "confident, wrong and biased" example, in full mode and in quick mode.

Both runs happen in a scratch copy of the repository (`make results` writes what the site
shows), with one thread (SLURM_CPUS_PER_TASK=1),
as in the tests. Targets: temperature scaling lowers the test-set ECE (it is fitted on the
validation set only); the shortcut model loses a clear share of the test digits when the tag is
gone while the clean model does not; the quick mode takes at most 60 s here, imports included.
"""

from bench.table import Row
from tools.full_runs import FullRuns

SECTION = "confident_wrong_biased"
QUICK_TARGET_S = 60
SHORTCUT_DROP_TARGET = 0.10  # accuracy the shortcut model must lose without its tag
CLEAN_DROP_LIMIT = 0.03  # and the most the clean model may lose


def rows() -> list[Row]:
    with FullRuns() as runs:
        full_run = runs.script("confident_wrong_biased", threads=1)
        quick_run = runs.script("confident_wrong_biased", "--quick", threads=1, out="results/quick")
    full, full_s, full_cpu_s = full_run.metrics, full_run.wall_s, full_run.cpu_s
    quick_s, quick_cpu_s = quick_run.wall_s, quick_run.cpu_s

    shortcut, clean = full["shortcut_model"], full["clean_model"]
    drop, clean_drop = full["shortcut_drop_without_tag"], full["clean_drop_without_tag"]
    return [
        Row(
            SECTION,
            f"classifier: test accuracy ({full['train_images']} training digits, {full['test_images']} test)",
            f"{full['test_accuracy']:.2%}",
        ),
        Row(
            SECTION,
            f"test ECE (15 bins) before -> after temperature scaling (T = {full['temperature']:.2f})",
            f"{full['ece_before']:.2%} -> {full['ece_after']:.2%}",
            "after < before",
            full["ece_after"] < full["ece_before"],
        ),
        Row(
            SECTION,
            "mean confidence: real test digits / random noise / shuffled pixels",
            " / ".join(f"{full['mean_confidence'][kind]:.1%}" for kind in ("real_digits", "random_noise", "shuffled_pixels")),
        ),
        Row(
            SECTION,
            "shortcut model: test accuracy with tag / no tag / random tag",
            f"{shortcut['test_accuracy_tag']:.1%} / {shortcut['test_accuracy_none']:.1%} / {shortcut['test_accuracy_random']:.1%}",
        ),
        Row(
            SECTION,
            "shortcut model: accuracy lost without the tag",
            f"{drop:.1%}",
            f">= {SHORTCUT_DROP_TARGET:.0%}",
            drop >= SHORTCUT_DROP_TARGET,
        ),
        Row(
            SECTION,
            f"clean model (reference): accuracy lost without the tag (test accuracy {clean['test_accuracy_none']:.1%})",
            f"{clean_drop:.1%}",
            f"<= {CLEAN_DROP_LIMIT:.0%}",
            abs(clean_drop) <= CLEAN_DROP_LIMIT,
        ),
        Row(SECTION, "full run, wall time (1 thread; CPU time in brackets)", f"{full_s:.1f} s ({full_cpu_s:.1f} s)"),
        Row(
            SECTION,
            "quick run, wall time (1 thread; CPU time in brackets)",
            f"{quick_s:.1f} s ({quick_cpu_s:.1f} s)",
            f"<= {QUICK_TARGET_S} s",
            quick_s <= QUICK_TARGET_S,
        ),
    ]
