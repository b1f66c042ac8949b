"""`make results`: re-run the examples' full modes and rewrite docs/results/<folder>/ with what they wrote.

    make results                          # every example with results on the site
    make results NAME=digits_cnn          # one: an example's name, or a folder of docs/results
    .venv/bin/python -m tools.results ddp_train penguin_species

The numbers and figures on the pages include timings, and a timing made while the machine does
other work measures that work too. So this refuses, with one line that says why, and writes
nothing under docs/, when
- the machine is visibly busy: the 1-minute load average is above MAX_LOAD when it starts, or
  the machine's load, sampled over a few seconds once the runs have ended, is above MAX_LOAD;
- repeated timings disagree: a fixed piece of work on every core (the probe: a pure-Python loop
  in one process per core), timed before the runs, between examples and after them, has its
  slowest time more than TOLERANCE above its fastest, i.e. the machine's speed changed. Each
  probe is the fastest of PROBE_REPEATS timings: on this project's virtual machines one timing
  of the same work, idle, varies by up to 80% (0.17 to 0.31 s), while a program that keeps a
  core busy slows every repeat, so the fastest of a few is steady when idle and rises when not.
The runs themselves happen in a scratch copy of the repository (tools/full_runs.py); only when
every check has passed are their metrics.json, figures and tables copied into docs/results/,
each folder replaced whole. Commit them afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tools.full_runs import RECIPES, SHOWN_ON_THE_SITE, FullRuns, Run

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results"
MAX_LOAD = 0.5  # runnable processes beyond this one, on average: an idle machine is near 0
TOLERANCE = 0.20  # the slowest probe may be at most 20% above the fastest (one busy core of two: +50%)
PROBE_LOOPS = 3_000_000  # about a quarter of a second per core on this project's machines
PROBE_REPEATS = 5
LOAD_SAMPLES = 50  # of /proc/loadavg's running count, 0.1 s apart, once the runs have ended


class Refused(Exception):
    """The machine is not fit to measure on; the message is the one line to print."""


def load_average() -> float:
    return os.getloadavg()[0]


def load_now(samples: int = LOAD_SAMPLES) -> float:
    """Runnable processes other than this one, averaged over `samples` looks 0.1 s apart (the
    1-minute average would still count the runs that just ended)."""
    running = []
    for _ in range(samples):
        running.append(int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1)
        time.sleep(0.1)
    return sum(running) / len(running)


def _loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def probe(cores: int | None = None) -> float:
    """Seconds for the same fixed work on every core at once, the fastest of PROBE_REPEATS
    timings: longer when something else keeps a core busy."""
    cores = cores or len(os.sched_getaffinity(0))
    timings = []
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_loop, [1000] * cores))  # start the workers before timing
        for _ in range(PROBE_REPEATS):
            started = time.perf_counter()
            list(pool.map(_loop, [PROBE_LOOPS] * cores))
            timings.append(time.perf_counter() - started)
    return min(timings)


def check_probes(seconds: list[float]) -> None:
    fastest, slowest = min(seconds), max(seconds)
    if slowest > fastest * (1 + TOLERANCE):
        times = ", ".join(f"{s:.2f}" for s in seconds)
        raise Refused(
            f"repeated timings disagree: the same work took {fastest:.2f} s to {slowest:.2f} s ({times}), more than "
            f"{TOLERANCE:.0%} apart, so something else ran; nothing written to docs/results, run again on an idle machine"
        )


def check_idle(load: float, when: str) -> None:
    if load > MAX_LOAD:
        raise Refused(
            f"the machine is busy {when}: load {load:.2f} (at most {MAX_LOAD} for measuring); "
            "nothing written to docs/results, run again on an idle machine"
        )


def chosen(names: list[str]) -> list[str]:
    """Examples to run, from examples' names or docs/results folder names (none: all)."""
    if not names:
        return list(RECIPES)
    by_folder = {folder: example for example, recipe in RECIPES.items() for folder in recipe.folders}
    unknown = [name for name in names if name not in RECIPES and name not in by_folder]
    if unknown:
        raise Refused(f"no full run is known for {', '.join(unknown)}; choose from: {', '.join(RECIPES)}")
    return list(dict.fromkeys(name if name in RECIPES else by_folder[name] for name in names))


def publish(runs: dict[str, Run]) -> None:
    """Replace docs/results/<folder>/ with the files the site shows, for each run."""
    for folder, run in runs.items():
        target = RESULTS / folder
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for pattern in SHOWN_ON_THE_SITE:
            for path in sorted(run.folder.glob(pattern)):
                shutil.copy2(path, target / path.name)
        print(f"results: wrote {target.relative_to(REPO)}/ ({', '.join(sorted(p.name for p in target.iterdir()))})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="examples (or docs/results folders) to re-run; default: all")
    args = parser.parse_args(argv)
    try:
        examples = chosen(args.names)
        check_idle(load_average(), "before the runs (1-minute load average)")
        probes = [probe() for _ in range(3)]
        check_probes(probes)
        made: dict[str, Run] = {}
        with FullRuns() as runs:
            for example in examples:
                print(f"results: running {example} (full mode) ...", flush=True)
                for folder, run in runs.recipe(example).items():
                    cpu = f", CPU {run.cpu_s:.0f} s" if run.cpu_s is not None else ""
                    print(f"results:   {folder}: {run.wall_s:.0f} s{cpu}", flush=True)
                    made[folder] = run
                probes.append(probe())
                check_probes(probes)
            check_idle(load_now(), "after the runs (load sampled over 5 s)")
            publish(made)
    except Refused as refused:
        print(f"results: refused: {refused}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
