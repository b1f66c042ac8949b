"""Small helpers that every example of the workshop shares.

Each example script stays a lesson you can read top to bottom; the few chores that would
otherwise be copied into each of them live here:

- the command line every example understands (`--quick`, `--seed`, `--out`) and one-line errors;
- how many CPU threads the job was given, and which device (GPU or CPU) to train on;
- seeding, progress lines a person can follow in a Slurm log;
- writing results atomically (a crash never leaves half a file), and `metrics.json` with the
  command, hardware and time of the run.

Nothing here imports torch at the top, so scikit-learn examples use it without paying for torch.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import random
import shlex
import socket
import sys
import tempfile
import time
from pathlib import Path

QUICK_ENVIRONMENT_VARIABLE = "WORKSHOP_QUICK"


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------
class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr and exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with errors on one line (what is wrong and where to look) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be 1 or more")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0 (a count that may be switched off)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def existing_folder(text: str) -> Path:
    """An argparse type: a folder that exists (a data set, say)."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder (check the path, or copy the data there first)")
    return path


def make_parser(description: str, default_out: str) -> ArgumentParser:
    """A parser that already knows the options every example shares."""
    # allow_abbrev=False: a misspelt option such as --epoch is an error, not a silent --epochs.
    parser = ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run for tests and CI; also switched on by {QUICK_ENVIRONMENT_VARIABLE}=1 (default: off)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same results (default: 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(default_out),
        help=f"folder for metrics.json and the figures (default: {default_out})",
    )
    return parser


def parse_args(parser: ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line, switch on quick mode from the environment, and check `--out`.

    Inside Jupyter (the notebook form of an example) the kernel's own arguments are not ours,
    so the defaults are used.
    """
    if argv is None and "ipykernel" in sys.modules:
        argv = []
    args = parser.parse_args(argv)
    if os.environ.get(QUICK_ENVIRONMENT_VARIABLE, "") not in ("", "0"):
        args.quick = True
    try:
        ensure_writable_folder(args.out)
    except UsageError as error:
        parser.error(str(error))
    return args


def ensure_writable_folder(folder: Path) -> None:
    """Create `folder` if needed and prove we can write there, before any long computation."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageError(f"cannot write to --out {folder}: {reason}; choose a folder you can write to") from None


def run_main(main) -> None:
    """Run an example's main(): bad input and Ctrl-C end with one line, not a traceback."""
    try:
        main()
    except UsageError as error:
        print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


# --------------------------------------------------------------------------------------------
# What the job was given: CPUs, device
# --------------------------------------------------------------------------------------------
def cpus_from_allocation() -> int:
    """The number of CPUs this process may use.

    In a Slurm job that is `--cpus-per-task` (SLURM_CPUS_PER_TASK); elsewhere, the CPUs this
    process is allowed to run on (its affinity). Never os.cpu_count(): on a shared node that is
    every core of the machine, most of them given to other people's jobs.
    """
    available = len(os.sched_getaffinity(0))
    from_slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if from_slurm.isdigit() and int(from_slurm) > 0:
        return min(int(from_slurm), available)
    return available


def use_allocated_threads() -> int:
    """Tell torch to use exactly the CPUs of the allocation, and say so."""
    import torch

    threads = cpus_from_allocation()
    torch.set_num_threads(threads)
    log(f"threads: {threads} (from {'SLURM_CPUS_PER_TASK' if 'SLURM_CPUS_PER_TASK' in os.environ else 'CPU affinity'})")
    return threads


def pick_device():
    """The first GPU if torch sees one, else the CPU; the choice is logged either way."""
    import torch

    if torch.cuda.is_available():
        device = torch.device("cuda")
        log(f"device: cuda ({torch.cuda.get_device_name(device)})")
    else:
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = f"CUDA_VISIBLE_DEVICES={gpus} but torch sees no CUDA device" if gpus else "no GPU found"
        device = torch.device("cpu")
        log(f"device: cpu ({why}; running on the CPU)")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if it is loaded) torch, so the same seed gives the same run."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------
# Progress a person can follow in a Slurm log
# --------------------------------------------------------------------------------------------
def log(message: str) -> None:
    """Print one line now (flushed, so it appears in the Slurm log while the job runs)."""
    print(message, flush=True)


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


class Progress:
    """One line per epoch or step: the metrics, the throughput and the time left.

        progress = Progress(total=epochs, unit="images")
        progress.step(epoch, items=len(train_set), loss=0.12, accuracy=0.97)
    prints
        epoch 3/10  loss 0.1200  accuracy 0.9700  5123 images/s  elapsed 0:00:09  left 0:00:21
    """

    def __init__(self, total: int, unit: str = "samples", label: str = "epoch"):
        self.total = total
        self.unit = unit
        self.label = label
        self.started = time.perf_counter()
        self.last = self.started

    def step(self, done: int, items: int = 0, **metrics: float) -> None:
        now = time.perf_counter()
        elapsed = now - self.started
        parts = [f"{self.label} {done}/{self.total}"]
        parts += [f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}" for name, value in metrics.items()]
        if items:
            parts.append(f"{items / max(now - self.last, 1e-9):.0f} {self.unit}/s")
        left = elapsed / done * (self.total - done) if done else 0.0
        parts += [f"elapsed {format_seconds(elapsed)}", f"left {format_seconds(left)}"]
        self.last = now
        log("  ".join(parts))


# --------------------------------------------------------------------------------------------
# Results, written atomically
# --------------------------------------------------------------------------------------------
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` is always either the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the file is
    renamed over `path` (a rename within one file system is atomic).
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.fchmod(handle, _permissions_for_new_file())
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _permissions_for_new_file() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_figure(figure, path: Path) -> None:
    """Save a matplotlib figure atomically (PNG, 150 dpi) and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    log(f"wrote {path}")


def save_torch(obj, path: Path) -> None:
    """torch.save, atomically: a job killed while saving leaves the previous file intact."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def cpu_model() -> str:
    """The CPU's model name, e.g. 'AMD EPYC 7642 48-Core Processor'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_info(started: float, device: str = "cpu", threads: int | None = None, **extra) -> dict:
    """Where, how and how long a run was: stored in metrics.json and shown on the example's page."""
    gpu = None
    if device.startswith("cuda"):
        import torch

        gpu = torch.cuda.get_device_name(0)
    versions = {"python": platform.python_version()}
    for module in ("torch", "sklearn", "numpy"):
        if module in sys.modules:
            versions[module] = sys.modules[module].__version__
    script = Path(sys.argv[0])
    command = shlex.join(["python", f"examples/{script.name}" if script.suffix == ".py" else script.name, *sys.argv[1:]])
    return {
        "command": command,
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "threads": threads if threads is not None else cpus_from_allocation(),
        "device": device,
        "gpu": gpu,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "versions": versions,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "finished": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        **extra,
    }


def write_metrics(out: Path, metrics: dict, run: dict) -> Path:
    """Write DIR/metrics.json: the example's metrics plus a "run" section from run_info()."""
    path = Path(out) / "metrics.json"
    atomic_write_text(path, json.dumps({**metrics, "run": run}, indent=2, sort_keys=False) + "\n")
    log(f"wrote {path}")
    return path


def report_result(**values) -> None:
    """The last line of every example's output, `result: key=value ...`: what a Slurm log ends with."""
    log("result: " + " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in values.items()))


# --------------------------------------------------------------------------------------------
# Data the examples share
# --------------------------------------------------------------------------------------------
def digits_splits(seed: int, validation: float = 0.2, test: float = 0.2) -> dict:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download), split three ways.

    Returns {"train": (x, y), "validation": (x, y), "test": (x, y)}: x is float32 of shape
    (n, 1, 8, 8) with pixels scaled to [0, 1], y the int64 labels 0-9. Each part keeps the
    classes' proportions (stratified), and the same seed gives the same parts.
    """
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # one channel, as a CNN expects
    y = digits.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=validation / (1 - test), stratify=y_rest, random_state=seed
    )
    return {"train": (x_train, y_train), "validation": (x_val, y_val), "test": (x_test, y_test)}


# --------------------------------------------------------------------------------------------
# Checkpoints that survive preemption and time limits
# --------------------------------------------------------------------------------------------
def rng_states() -> dict:
    """The random states of Python, NumPy and torch, as tensors and plain values.

    Stored like this, a checkpoint can be read back with torch.load(weights_only=True), which
    refuses anything else (so loading a file never runs code from it).
    """
    import numpy as np
    import torch

    version, python_state, gauss_next = random.getstate()
    name, keys, position, has_gauss, cached_gauss = np.random.get_state()
    states = {
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gauss": float(cached_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    """Put back the random states that rng_states() stored."""
    import numpy as np
    import torch

    python = states["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss_next"]))
    numpy = states["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["name"], keys, numpy["position"], numpy["has_gauss"], numpy["cached_gauss"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint saved at `path` with save_torch(), or None when there is none yet.

    weights_only=True: only tensors and plain Python values are read, so a checkpoint file
    cannot run code when it is loaded.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


class StopSignals:
    """Remembers that a signal asked the program to stop, so it can save a checkpoint first.

        stop = StopSignals(signal.SIGUSR1, signal.SIGTERM)
        ...
        if stop:  # checked at a safe point, e.g. between two batches
            save_checkpoint(); sys.exit(0)

    The handler only sets a flag: saving from inside a signal handler could interrupt a save
    already in progress.
    """

    def __init__(self, *signals: int):
        import signal

        self.received: str | None = None
        for number in signals:
            signal.signal(number, self._remember)

    def _remember(self, number: int, frame) -> None:
        import signal

        self.received = signal.Signals(number).name

    def __bool__(self) -> bool:
        return self.received is not None

