"""Gather a sweep: one table and one figure from every array task's metrics.json, best setting marked.

Runs after the job array of slurm/sweep_array.sbatch (the job file slurm/sweep_gather.sbatch is
submitted with --dependency=afterok:<array job id>, so it starts only once every task has ended
well). It checks that every row of the parameter file has a result, then picks the best setting by
*validation* accuracy; the test accuracy is only reported. Picking by test accuracy would make
the reported number an optimistic one: it would have been used to make the choice.
"""

import csv
import io
import json
import time
from pathlib import Path

import workshop


def main() -> None:
    parser = workshop.make_parser(__doc__, default_out="results/sweep_gather")
    parser.add_argument(
        "--tasks",
        type=Path,
        required=True,
        help="the array tasks' result folders without their task number: PREFIX reads PREFIX_1/metrics.json, "
        "PREFIX_2/metrics.json, ... (required; the job file passes results/sweep_array_<array job id>)",
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("examples/sweep_params.csv"),
        help="the parameter file the array read: every row must have a result (default: examples/sweep_params.csv)",
    )
    args = workshop.parse_args(parser)
    started = time.perf_counter()

    settings = read_settings(args.params)
    results = read_results(args.tasks, settings)
    best = max(results, key=lambda r: (r["validation_accuracy"], -r["validation_loss"]))
    workshop.log(f"gathered {len(results)} results from {args.tasks}_*; best by validation accuracy: task {best['task']}")

    workshop.atomic_write_text(args.out / "sweep_table.csv", table_csv(results, best))
    workshop.atomic_write_text(args.out / "sweep_table.md", table_markdown(results, best))
    workshop.log(f"wrote {args.out / 'sweep_table.csv'} and {args.out / 'sweep_table.md'}")
    workshop.save_figure(plot(results, best), args.out / "sweep.png")

    keys = ("task", "learning_rate", "hidden", "validation_accuracy", "test_accuracy")
    metrics = {
        "points": len(results),
        "best": {key: best[key] for key in keys},
        "chosen_by": "validation_accuracy (ties: lower validation_loss)",
        # keyed by task number, so a page can name one cell: table.7.validation_accuracy
        "table": {
            str(result["task"]): {**{key: result[key] for key in keys}, "chosen": "**best**" if result is best else ""}
            for result in results
        },
        "tasks": f"{args.tasks}_<task>",
    }
    workshop.write_metrics(args.out, metrics, workshop.run_info(started, threads=1))
    workshop.report_result(
        points=len(results),
        best_task=best["task"],
        best_learning_rate=best["learning_rate"],
        best_hidden=best["hidden"],
        best_val_accuracy=best["validation_accuracy"],
        best_test_accuracy=best["test_accuracy"],
    )


def read_settings(path: Path) -> list[dict]:
    """The rows of the parameter file, as the array tasks read them."""
    try:
        with open(path, newline="") as file:
            return list(csv.DictReader(file))
    except OSError as error:
        raise workshop.UsageError(f"cannot read --params {path}: {error.strerror}") from None


def read_results(prefix: Path, settings: list[dict]) -> list[dict]:
    """Every task's metrics.json, in task order.

    A missing result, or one trained with other settings than its row (a parameter file edited
    after the sweep ran), is an error that names the tasks.
    """
    results, missing, stale = [], [], []
    for task, row in enumerate(settings, start=1):
        path = prefix.parent / f"{prefix.name}_{task}" / "metrics.json"
        if not path.is_file():
            missing.append(task)
            continue
        result = json.loads(path.read_text())
        if (result["learning_rate"], result["hidden"]) != (float(row["learning_rate"]), int(row["hidden"])):
            stale.append(task)
        results.append(result)
    if missing:
        raise workshop.UsageError(
            f"no {prefix}_<task>/metrics.json for task(s) {', '.join(map(str, missing))} of {len(settings)}: "
            "read those tasks' logs (sweep_array_<array job id>_<task>.out), fix the cause and submit the sweep again"
        )
    if stale:
        raise workshop.UsageError(
            f"task(s) {', '.join(map(str, stale))} ({prefix}_<task>) trained other settings than their rows of the "
            "parameter file: the file changed after the sweep ran; run the sweep again"
        )
    return results


COLUMNS = ("task", "learning_rate", "hidden", "validation_accuracy", "test_accuracy")


def table_csv(results: list[dict], best: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS, "best"])
    for result in results:
        writer.writerow([result[column] for column in COLUMNS] + ["yes" if result is best else ""])
    return buffer.getvalue()


def table_markdown(results: list[dict], best: dict) -> str:
    lines = [
        "| task | learning rate | hidden units | validation accuracy | test accuracy | |",
        "|---:|---:|---:|---:|---:|:---|",
    ]
    for r in results:
        mark = "**best** (by validation)" if r is best else ""
        lines.append(
            f"| {r['task']} | {r['learning_rate']:g} | {r['hidden']} | "
            f"{r['validation_accuracy']:.2%} | {r['test_accuracy']:.2%} | {mark} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], best: dict):
    """Validation accuracy against learning rate, one line per hidden width, the best one starred."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a compute node
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for hidden in sorted({r["hidden"] for r in results}):
        points = sorted((r["learning_rate"], r["validation_accuracy"]) for r in results if r["hidden"] == hidden)
        axes.plot(*zip(*points), marker="o", label=f"{hidden} hidden units")
    axes.plot(
        best["learning_rate"], best["validation_accuracy"], marker="*", markersize=18, color="gold",
        markeredgecolor="black", linestyle="none", label=f"best: task {best['task']}",
    )
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("validation accuracy")
    axes.set_ylim(0, 1.02)
    axes.axhline(0.1, color="grey", linestyle=":", label="chance (10 classes)")
    axes.set_title(f"Sweep: {len(results)} settings, one array task each")
    axes.legend(loc="lower left")
    axes.grid(alpha=0.3)
    return figure


if __name__ == "__main__":
    workshop.run_main(main)
