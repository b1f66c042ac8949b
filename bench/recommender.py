"""Benchmark: the recommender example, full mode and quick mode.

Targets (issue 12): in full mode (at most 5 min on 2 cores) the matrix factorisation's held-out
RMSE is within 5% of the noise floor, clearly below the user-plus-film biases, and its
recall@10 beats recommending the most popular films; the library's figure (scikit-surprise's
SVD) is reported beside ours. Quick mode: at most 10 s here, imports included.
"""

from bench.table import Row
from tools.full_runs import FullRuns

SECTION = "recommender"
FULL_TARGET_S = 300
QUICK_TARGET_S = 10
WITHIN_FLOOR = 0.05
CLEAR_MARGIN = 0.02  # RMSE below the biases model: a few times the run-to-run spread over seeds


def rows() -> list[Row]:
    with FullRuns() as runs:
        full = runs.script("recommender")
        quick = runs.script("recommender", "--quick", out="results/recommender_quick")
    metrics = full.metrics
    rmse, floor, ranking = metrics["test_rmse"], metrics["noise_floor"], metrics["ranking"]
    threads = metrics["run"]["threads"]
    return [
        Row(SECTION, "held-out RMSE, matrix factorisation (PyTorch)", f"{rmse['matrix_factorisation']:.4f}"),
        Row(SECTION, "noise floor (RMSE of the true scores, reference)", f"{floor:.4f}"),
        Row(
            SECTION,
            "matrix factorisation above the noise floor",
            f"{metrics['mf_above_noise_floor']:+.1%}",
            f"<= {WITHIN_FLOOR:.0%}",
            metrics["mf_above_noise_floor"] <= WITHIN_FLOOR,
        ),
        Row(
            SECTION,
            f"held-out RMSE, user + film biases (reference {rmse['biases']:.4f})",
            f"{rmse['biases'] - rmse['matrix_factorisation']:.4f} above ours",
            f">= {CLEAR_MARGIN}",
            rmse["biases"] - rmse["matrix_factorisation"] >= CLEAR_MARGIN,
        ),
        Row(SECTION, f"held-out RMSE, scikit-surprise {metrics['library']['version']} SVD (library)", f"{rmse['surprise_svd']:.4f}"),
        Row(
            SECTION,
            f"recall@10, ours (popularity: {ranking['popularity']['recall_at_10']:.3f})",
            f"{ranking['matrix_factorisation']['recall_at_10']:.3f}",
            "> popularity",
            ranking["matrix_factorisation"]["recall_at_10"] > ranking["popularity"]["recall_at_10"],
        ),
        Row(SECTION, "recall@10, the true scores (reference)", f"{ranking['true_score']['recall_at_10']:.3f}"),
        Row(SECTION, "top 1% films: share of recommendations (of the ratings)",
            f"{metrics['bias']['recommendations_share_top_1pct']:.1%} ({metrics['bias']['ratings_share_top_1pct']:.1%})"),  # fmt: skip
        Row(SECTION, f"training ratings/s on the CPU ({threads} thread{'s' if threads != 1 else ''})", f"{metrics['timing']['ratings_per_second']:,.0f}"),
        Row(SECTION, f"full run, wall time ({threads} thread{'s' if threads != 1 else ''})", f"{full.wall_s:.1f} s",
            f"<= {FULL_TARGET_S} s", full.wall_s <= FULL_TARGET_S),  # fmt: skip
        Row(SECTION, "quick run, wall time", f"{quick.wall_s:.1f} s", f"<= {QUICK_TARGET_S} s", quick.wall_s <= QUICK_TARGET_S),
    ]
