"""The examples' full runs, for `make results` (tools/results.py) and the benchmark (bench/).

    with FullRuns() as runs:
        digits = runs.script("digits_cnn")              # python3 examples/digits_cnn.py, full mode
        quick = runs.script("digits_cnn", "--quick", out="results/digits_cnn_quick")
        ddp = runs.recipe("ddp_train")                  # {"ddp_single": Run, "ddp_srun": Run, ...}

Every run happens in one scratch copy of the repository (what git tracks, and new files it
does not ignore), as a reader would run it from their own copy: `python3 examples/<name>.py`,
writing to its default `results/<name>/`, so the command that metrics.json records is the one
the page shows. Nothing here writes into the repository. Job files are submitted unchanged, in
full mode (no WORKSHOP_QUICK), to a throwaway local Slurm started on first use.

RECIPES says how each example's full run is made, and which docs/results/<folder>/ each run
fills; an example that has none says why in WITHOUT_FULL_RUN (tests/test_tools.py checks that
every example is in one or the other).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tools.slurm_cluster import REPO
from tools.slurm_jobs import JobRun, LocalSlurm, scratch_copy

CHECKPOINT_TIMEOUT_S = 1800  # a full-mode job on this machine; only stops a hung one
SWEEP_TIMEOUT_S = 1800


@dataclass
class Run:
    """One full run: the folder it wrote, its metrics.json, and what it took."""

    folder: Path
    metrics: dict
    wall_s: float  # a script: imports included; a job: from submission to its end
    cpu_s: float | None = None  # a script's CPU time: far below wall time x threads means a busy machine


class FullRuns:
    """A scratch copy of the repository to run examples in, and a local Slurm once one is needed."""

    def __enter__(self) -> FullRuns:
        self._stack = contextlib.ExitStack()
        self.root = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="full-runs-")))
        self.repo = scratch_copy(self.root / "repository")
        self._slurm: LocalSlurm | None = None
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()  # the cluster first (if one was started), then the scratch folder

    @property
    def slurm(self) -> LocalSlurm:
        """A local Slurm in full mode, started on first use and stopped with this FullRuns."""
        if self._slurm is None:
            self._slurm = self._stack.enter_context(LocalSlurm.started(quick=False, account="full_runs"))
        return self._slurm

    def script(self, example: str, *args: str, threads: int | None = None, out: str | None = None) -> Run:
        """Run examples/<example>.py to its end (full mode unless `--quick` is among `args`), from
        the scratch repository; `threads`: SLURM_CPUS_PER_TASK for it (default: none, so the
        CPUs this process may use); `out`: its --out (default: its own, results/<example>)."""
        environment = {key: value for key, value in os.environ.items() if key not in ("WORKSHOP_QUICK", "SLURM_CPUS_PER_TASK")}
        environment["MPLBACKEND"] = "Agg"
        if threads is not None:
            environment["SLURM_CPUS_PER_TASK"] = str(threads)
        command = [sys.executable, f"examples/{example}.py", *args, *(["--out", out] if out else [])]
        started, cpu_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        process = subprocess.run(command, cwd=self.repo, env=environment, capture_output=True, text=True)
        wall_s, cpu_after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command[1:])} failed (exit {process.returncode}):\n{process.stderr[-2000:]}")
        folder = self.repo / (out or f"results/{example}")
        return Run(folder, json.loads((folder / "metrics.json").read_text()), wall_s, cpu_s)

    def job(self, run: JobRun) -> Run:
        """A job that ended well, as a Run (its results folder and metrics)."""
        if run.exit_code != 0:
            raise RuntimeError(f"{run.job_file.name} failed:\n{run.explain()}")
        return Run(run.results_dir, json.loads((run.results_dir / "metrics.json").read_text()), run.seconds)

    def recipe(self, name: str) -> dict[str, Run]:
        """The full run(s) of one example: docs/results folder name -> Run."""
        made = RECIPES[name].make(self)
        assert tuple(made) == RECIPES[name].folders, f"the recipe of {name} made {list(made)}, not {RECIPES[name].folders}"
        return made


# ------------------------------------------------------------------------------------------------
# The recipes: one per example with results on the site
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    make: Callable[[FullRuns], dict[str, Run]]  # runs the example's full mode, once or more
    folders: tuple[str, ...]  # the docs/results folders it fills, in the order `make` returns them


def script_recipe(example: str, threads: int | None = None) -> Recipe:
    """A plain full run of the script; `threads`: as the page says it was run (default: the CPUs)."""
    return Recipe(lambda runs: {example: runs.script(example, threads=threads)}, (example,))


def ddp_runs(runs: FullRuns) -> dict[str, Run]:
    """One process with one thread, run directly (the reference), then two processes with each of
    the two launchers, the job files submitted unchanged."""
    single = runs.script("ddp_train", threads=1, out="results/ddp_single")
    srun, torchrun = (runs.slurm.launch(REPO / "slurm" / f"{name}.sbatch") for name in ("ddp_srun", "ddp_torchrun"))
    return {"ddp_single": single, "ddp_srun": runs.job(srun.wait(CHECKPOINT_TIMEOUT_S)), "ddp_torchrun": runs.job(torchrun.wait(CHECKPOINT_TIMEOUT_S))}


def sweep_runs(runs: FullRuns) -> dict[str, Run]:
    """slurm/submit_sweep.sh: the job array (one task per row of examples/sweep_params.csv), then
    the job that gathers its table; the gathered folder is what the page shows."""
    output, jobs = runs.slurm.launch_script(REPO / "slurm" / "submit_sweep.sh")
    if output.returncode != 0 or len(jobs) != 2:
        raise RuntimeError(f"slurm/submit_sweep.sh did not submit the array and the gathering job:\n{output.stdout}{output.stderr}")
    array, gather = (job.wait(SWEEP_TIMEOUT_S) for job in jobs)
    if array.exit_code != 0:
        raise RuntimeError(f"a task of the sweep failed:\n{array.explain()}")
    return {"sweep_gather": runs.job(gather)}


def checkpoint_runs(runs: FullRuns) -> dict[str, Run]:
    """slurm/checkpoint_requeue.sbatch twice at once: one job left alone, one requeued with
    `scontrol requeue` once its log shows epoch 4 (what preemption on windfall does)."""
    job_file = REPO / "slurm" / "checkpoint_requeue.sbatch"
    uninterrupted, requeued = runs.slurm.launch(job_file), runs.slurm.launch(job_file)
    requeued.wait_for_line(r"^epoch 4/", timeout=CHECKPOINT_TIMEOUT_S)
    runs.slurm.run("scontrol", "requeue", str(requeued.id), check=True)
    return {
        "checkpoint_requeue_uninterrupted": runs.job(uninterrupted.wait(CHECKPOINT_TIMEOUT_S)),
        "checkpoint_requeue": runs.job(requeued.wait(CHECKPOINT_TIMEOUT_S)),
    }


SELF_PLAY_OTHER_SEEDS = (1, 2, 3)


def self_play_runs(runs: FullRuns) -> dict[str, Run]:
    """The published run (seed 0), then the same full run with other seeds: how far the results
    move with the seed alone goes on the page. Of the other seeds, only metrics.json is kept."""
    made = {"self_play": runs.script("self_play")}
    for seed in SELF_PLAY_OTHER_SEEDS:
        run = made[f"self_play_seed_{seed}"] = runs.script("self_play", "--seed", str(seed), out=f"results/self_play_seed_{seed}")
        for path in run.folder.iterdir():
            if path.name != "metrics.json":
                path.unlink()
    return made


# example (examples/<name>.py) -> how its full run is made. Threads as each page states them.
RECIPES = {
    "burgers_pinn": script_recipe("burgers_pinn"),
    "checkpoint_requeue": Recipe(checkpoint_runs, ("checkpoint_requeue_uninterrupted", "checkpoint_requeue")),
    "confident_wrong_biased": script_recipe("confident_wrong_biased", threads=1),
    "ddp_train": Recipe(ddp_runs, ("ddp_single", "ddp_srun", "ddp_torchrun")),
    "digits_cnn": script_recipe("digits_cnn"),
    "digits_diffusion": script_recipe("digits_diffusion"),
    "fine_tuning": script_recipe("fine_tuning"),
    "penguin_clustering": script_recipe("penguin_clustering"),
    "penguin_species": script_recipe("penguin_species"),
    "poetry": script_recipe("poetry"),
    "recommender": script_recipe("recommender"),
    "self_play": Recipe(self_play_runs, ("self_play", *(f"self_play_seed_{seed}" for seed in SELF_PLAY_OTHER_SEEDS))),
    "sweep_train": Recipe(sweep_runs, ("sweep_gather",)),
    "thread_scaling": script_recipe("thread_scaling"),
}
WITHOUT_FULL_RUN = {
    "hello_gpu": "its sample output on the running-jobs pages is written by tests/test_running_jobs_pages.py",
    "sweep_gather": "the sweep's gathering job: its full run is part of sweep_train's",
}
# The files of a run that the site shows (checkpoints and saved models stay behind; a .md file
# in docs/ would become a page of its own). Text files: what a reviewer checks without the code
# (poetry's samples, held-out passages and split; self_play's judged positions).
SHOWN_ON_THE_SITE = ("metrics.json", "*.png", "*.csv", "*.npz", "*.txt", "split.json", "*.jsonl")

