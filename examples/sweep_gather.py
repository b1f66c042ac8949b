"""Gather a sweep: one table and one figure from every array task's metrics.json, best setting marked.

Runs after the job array of slurm/sweep_array.sbatch: slurm/submit_sweep.sh submits
slurm/sweep_gather.sbatch with --dependency=afterok:<array job id>, so it starts only once every
task has ended well. It checks that every row of the settings file has its result, then picks
the best setting by *validation* accuracy and reports that setting's *test* accuracy. Picking by
test accuracy would make the reported number an optimistic one: it would have been used to make
the choice, and would no longer say how the model does on images it has never met.
"""

import csv
import io
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write figures to files: a compute node has no screen
import matplotlib.pyplot as plt

import workshop


def main() -> None:
    parser = workshop.make_parser("Gather the results of a sweep's array tasks.", default_out="results/sweep_gather")
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
        help="the settings file the array read: every row must have a result",
    )
    args = workshop.parse_args(parser)
    started = time.perf_counter()

    # Row N of the settings file was trained by array task N, into PREFIX_N/metrics.json.
    try:
        with open(args.params, newline="") as file:
            settings = list(csv.DictReader(file))
    except OSError as error:
        workshop.refuse(f"cannot read --params {args.params}: {error.strerror}")
    if not settings:
        workshop.refuse(f"--params {args.params} has no settings under its header line")
    results, missing, changed = [], [], []
    for task, row in enumerate(settings, start=1):
        path = args.tasks.parent / f"{args.tasks.name}_{task}" / "metrics.json"
        if not path.is_file():
            missing.append(task)
            continue
        result = json.loads(path.read_text())
        if result.get("settings_row") != row:
            changed.append(task)  # trained with other settings: the file was edited after the sweep ran
        results.append(result)
    if missing:
        workshop.refuse(
            f"no {args.tasks}_<task>/metrics.json for task(s) {', '.join(map(str, missing))} of {len(settings)}: "
            "read those tasks' logs (sweep_array_<array job id>_<task>.out), fix the cause and submit the sweep again"
        )
    if changed:
        workshop.refuse(
            f"task(s) {', '.join(map(str, changed))} of {args.tasks}_<task> trained other settings than their rows of "
            f"{args.params}: the file changed after the sweep ran; submit the sweep again"
        )

    # The choice: the best validation accuracy. 180 validation images make accuracy move in steps
    # of half a point, so ties happen: the lower validation loss, a finer measure, breaks them.
    best = max(results, key=lambda result: (result["validation_accuracy"], -result["validation_loss"]))
    columns = ["task", *settings[0], "validation_accuracy", "test_accuracy"]
    workshop.log(f"gathered {len(results)} results from {args.tasks}_<task>; best by validation accuracy:")
    for result in results:
        workshop.log("  ".join(f"{column} {result[column]:.4g}" for column in columns) + ("  <- best" if result is best else ""))

    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow([*columns, "best"])
    writer.writerows([*(result[column] for column in columns), "yes" if result is best else ""] for result in results)
    workshop.atomic_write_bytes(args.out / "sweep_table.csv", table.getvalue().encode())
    workshop.log(f"wrote {args.out / 'sweep_table.csv'}")
    workshop.save_figure(plot(results, best), args.out / "sweep.png")

    metrics = {
        "points": len(results),
        "best": {column: best[column] for column in columns},
        "chosen_by": "validation_accuracy (ties: lower validation_loss)",
        # keyed by task number, so that a page can name one cell: table.7.validation_accuracy
        "table": {
            str(result["task"]): {**{column: result[column] for column in columns}, "chosen": "**best**" if result is best else ""}
            for result in results
        },
    }
    workshop.write_metrics(args.out, metrics, started, threads=1)
    workshop.report_result(
        points=len(results),
        best_task=best["task"],
        best_learning_rate=best["learning_rate"],
        best_val_accuracy=best["validation_accuracy"],
        best_test_accuracy=best["test_accuracy"],
    )


def plot(results: list[dict], best: dict):
    """Validation and test accuracy against the learning rate; the setting chosen by validation starred."""
    results = sorted(results, key=lambda result: result["learning_rate"])
    rates = [result["learning_rate"] for result in results]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(rates, [r["validation_accuracy"] for r in results], marker="o", label="validation (used to choose)")
    axes.plot(rates, [r["test_accuracy"] for r in results], marker="s", linestyle="--", alpha=0.7, label="test (only reported)")
    star = {"marker": "*", "markersize": 18, "color": "gold", "markeredgecolor": "black", "linestyle": "none"}
    axes.plot(best["learning_rate"], best["validation_accuracy"], **star, label=f"chosen: task {best['task']}")
    axes.axhline(0.1, color="grey", linestyle=":", label="chance (10 digits)")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1.02)
    axes.set_title(f"Sweep: {len(results)} settings, one array task each")
    axes.legend(loc="lower center")  # the middle of the range trains well: the bottom there is empty
    axes.grid(alpha=0.3)
    return figure


if __name__ == "__main__":
    main()
