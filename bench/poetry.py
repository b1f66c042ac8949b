"""Benchmark: the character-level Transformer that writes verse (examples/poetry.py).

Runs happen in a scratch copy of the repository (`make results` writes what the site shows).
Targets (issue 13), on this 2-core machine: the full mode (the small model, on the CPUs this
process may use: SLURM_CPUS_PER_TASK if set, else its CPU affinity; run it on an idle machine)
within 10 minutes, its held-out bits per character below the best smoothed n-gram's; the margin,
the n-gram's n and the time are reported. Quick mode, one thread as in the tests: at most 10 s,
imports included, and below the unigram model. Where torch sees a GPU, the large model (what
slurm/poetry_gpu.sbatch trains) is run too and reported; without one, that row says so.
"""

from bench.table import Row
from tools.full_runs import FullRuns

SECTION = "poetry"
FULL_TARGET_S = 600
QUICK_TARGET_S = 10


def model_rows(label: str, metrics: dict, wall_s: float) -> list[Row]:
    bits = metrics["bits_per_character"]
    n = metrics["ngram_order"]
    return [
        Row(
            SECTION,
            f"{label}: test bits per character, Transformer ({metrics['parameters']:,} parameters, {metrics['steps']} steps)",
            f"{bits['transformer']:.3f}",
            f"< {n}-gram's {bits['ngram']:.3f}",
            bits["transformer"] < bits["ngram"],
        ),
        Row(SECTION, f"{label}: margin over the {n}-gram (n chosen on validation)", f"{metrics['margin_over_ngram']:+.3f} bits"),
        Row(SECTION, f"{label}: wall time ({metrics['run']['threads']} threads, {metrics['run']['device']})", f"{wall_s:.0f} s"),
        Row(SECTION, f"{label}: training speed", f"{metrics['run']['characters_per_second']:,} characters/s"),
    ]


def rows() -> list[Row]:
    import torch

    with FullRuns() as runs:
        full = runs.script("poetry")
        quick = runs.script("poetry", "--quick", threads=1, out="results/quick")
        large = runs.script("poetry", "--size", "large", out="results/large") if torch.cuda.is_available() else None
    bits, quick_bits = full.metrics["bits_per_character"], quick.metrics["bits_per_character"]
    quick_met = quick.wall_s <= QUICK_TARGET_S
    table = model_rows("full run", full.metrics, full.wall_s)
    table[2].target, table[2].met = f"<= {FULL_TARGET_S} s", full.wall_s <= FULL_TARGET_S
    table += [
        Row(SECTION, "baselines: uniform, unigram (reference)", f"{bits['uniform']:.3f}, {bits['unigram']:.3f}"),
        Row(
            SECTION,
            "quick run: test bits per character (tiny model)",
            f"{quick_bits['transformer']:.3f}",
            f"< unigram's {quick_bits['unigram']:.3f}",
            quick_bits["transformer"] < quick_bits["unigram"],
        ),
        Row(SECTION, "quick run: wall time (1 thread)", f"{quick.wall_s:.1f} s", f"<= {QUICK_TARGET_S} s", quick_met),
    ]
    if large is None:
        table.append(Row(SECTION, "GPU run (large model, as slurm/poetry_gpu.sbatch)", "not measured: torch sees no GPU here"))
    else:
        table += model_rows(f"GPU run ({large.metrics['run']['gpu']})", large.metrics, large.wall_s)
    return table
