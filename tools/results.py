"""`make results`: re-run the examples' full modes and rewrite docs/results/<folder>/ with what they wrote.

    make results                          # every example with results on the site
    make results NAME=digits_cnn          # one: an example's name, or a folder of docs/results
    .venv/bin/python -m tools.results ddp_train penguin_species

The numbers and figures on the pages include timings, and a timing made while the machine does
other work measures that work too. So this refuses, with one line that says why, and writes
nothing under docs/, when
- the machine is visibly busy: the 1-minute load average is above MAX_LOAD when it starts, or
  the machine's load, sampled over a few seconds once the runs have ended, is above MAX_LOAD;
- another program takes the cores: a fixed piece of work on every core (the probe: a
  pure-Python loop in one process per core), run before the runs, between examples and after
  them, gets less than MIN_CPU_SHARE of its wall time as CPU time. A process that has a core to
  itself is never kept waiting; one that shares it with a busy program gets about half.
  (Timing the probe instead would not tell the two apart here: on this project's virtual
  machines the same work, with nothing else running, takes from 0.19 s to 0.62 s as the host's
  speed changes, while its CPU share stays at 0.96 to 1.00; beside one busy program it fell to
  0.55 to 0.76.) So the timings a page shows may differ between runs as the host's speed does;
  the pages that teach with timings repeat each setting, interleaved, and show the spread;
- the repeats disagree: a run that repeats its timings records `largest_spread` (its slowest
  and fastest round of one setting apart by that share of their median), and a spread above
  MAX_SPREAD means the machine changed under the measurement.
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
MIN_CPU_SHARE = 0.85  # of the probe's wall time, as CPU time, in its worst worker (a core to itself: 0.96-1.00)
PROBE_LOOPS = 3_000_000  # about a quarter of a second per core on this project's machines
PROBE_REPEATS = 5
LOAD_SAMPLES = 50  # of /proc/loadavg's running count, 0.1 s apart, once the runs have ended
# Slowest and fastest repeat of one setting at most half their median apart. On an idle machine
# here (load 0.6) thread_scaling's rounds spread by 20-37%: the host's speed moves between rounds,
# and every setting of a round moves with it, which the interleaving leaves out of the comparison.
MAX_SPREAD = 0.5


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


def _cpu_share(n: int) -> float:
    """CPU time over wall time of a fixed loop: near 1 when this process had its core to itself."""
    cpu, wall = time.process_time(), time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def probe(cores: int | None = None) -> float:
    """The CPU share of the same work on every core at once: the median of PROBE_REPEATS, each
    the share of the worker that got least."""
    cores = cores or len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_cpu_share, [1000] * cores))  # start the workers first
        shares = sorted(min(pool.map(_cpu_share, [PROBE_LOOPS] * cores)) for _ in range(PROBE_REPEATS))
    return shares[len(shares) // 2]


def check_probes(shares: list[float]) -> None:
    if min(shares) < MIN_CPU_SHARE:
        listed = ", ".join(f"{share:.2f}" for share in shares)
        raise Refused(
            f"another program took the cores: the probe got as little as {min(shares):.0%} of its time as CPU time "
            f"({listed}; at least {MIN_CPU_SHARE:.0%} when it has the cores to itself); "
            "nothing written to docs/results, run again on an idle machine"
        )


def check_idle(load: float, when: str) -> None:
    if load > MAX_LOAD:
        raise Refused(
            f"the machine is busy {when}: load {load:.2f} (at most {MAX_LOAD} for measuring); "
            "nothing written to docs/results, run again on an idle machine"
        )


def check_repeats(runs: dict[str, Run]) -> None:
    for folder, run in runs.items():
        spread = run.metrics.get("largest_spread")
        if spread is not None and spread > MAX_SPREAD:
            raise Refused(
                f"the repeats of {folder} disagree: its slowest and fastest round of one setting are {spread:.0%} of their median apart "
                f"(at most {MAX_SPREAD:.0%}); nothing written to docs/results, run again on an idle machine"
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
            check_repeats(made)
            publish(made)
    except Refused as refused:
        print(f"results: refused: {refused}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
