"""The run's plumbing, shared by every example (nothing here is machine learning): the options
every example takes and one-line errors; the CPUs and the device the job was given; a progress
line for the Slurm log; results written so that a crash never leaves half a file. Pages show the
parts they explain (`--8<-- "examples/workshop.py:threads"`). torch is imported only where it is
used, so scikit-learn examples do not pay for it."""

import argparse
import datetime
import gc
import io
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

QUICK_ENVIRONMENT_VARIABLE = "WORKSHOP_QUICK"
# In a Jupyter kernel (an example's notebook form) the command line is the kernel's own.
IN_NOTEBOOK = Path(sys.argv[0]).name == "ipykernel_launcher.py"


# --8<-- [start:options]
class ArgumentParser(argparse.ArgumentParser):
    """argparse, with errors on one line (what is wrong and where to look) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def make_parser(description: str, default_out: str) -> ArgumentParser:
    """A parser that already knows the three options every example takes."""
    # allow_abbrev=False: a misspelt option such as --epoch is an error, not a silent --epochs.
    parser = ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help=f"a short run for tests and CI; also switched on by {QUICK_ENVIRONMENT_VARIABLE}=1")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same results")
    parser.add_argument("--out", type=Path, default=Path(default_out), help="folder for metrics.json and the figures")
    return parser


def parse_args(parser: ArgumentParser, quick_defaults: dict | None = None) -> argparse.Namespace:
    """Read the command line; with --quick, `quick_defaults` replace those options' defaults, and
    an option given on the command line still wins (`--quick --epochs 7` trains 7 epochs). --help
    gives every default, and the quick one, from the code itself. In Jupyter (an example's
    notebook form) the kernel's arguments are not ours: defaults."""
    quick_defaults = quick_defaults or {}
    for option in parser._actions:  # each option's help ends with its defaults, read from the code
        if option.option_strings and option.default not in (None, argparse.SUPPRESS):
            quick = f"; {readable(quick_defaults[option.dest])} with --quick" if option.dest in quick_defaults else ""
            help_text = (option.help or "").removesuffix(" (default: %(default)s)")  # BooleanOptionalAction's own, as True
            option.help = f"{help_text} (default: {readable(option.default)}{quick})".lstrip()
    argv = [] if IN_NOTEBOOK else sys.argv[1:]
    args = parser.parse_args(argv)
    if os.environ.get(QUICK_ENVIRONMENT_VARIABLE, "") not in ("", "0"):
        args.quick = True
    if args.quick and quick_defaults:  # only then is there anything to parse again
        parser.set_defaults(**quick_defaults)
        args = parser.parse_args(argv)
        args.quick = True
    try:  # fail now, not after an hour of training
        args.out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=args.out).close()
    except OSError as error:
        parser.error(f"cannot write to --out {args.out}: {error.strerror or error}; choose a folder you can write to")
    return args


def readable(value) -> str:
    """A default as --help shows it: on or off, `5 10 25 50`, a number or a path."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value).replace("%", "%%")


def refuse(message: str) -> None:
    """Stop on bad input: one line on stderr saying what is wrong and what to do, exit status 2."""
    print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def at_least(minimum: float, kind=int, above: bool = False):
    """An argparse type: a number (`kind`) of at least `minimum`, or above it: `type=at_least(1)`."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not (value > minimum if above else value >= minimum):  # `not`: NaN is refused too
            raise argparse.ArgumentTypeError(f"{text} must be {'greater than' if above else 'at least'} {minimum:g}")
        return value
    return parse


positive_float = at_least(0, float, above=True)  # a learning rate, a width
# --8<-- [end:options]


# --8<-- [start:threads]
def cpus_from_allocation() -> int:
    """The CPUs this process may use: Slurm's --cpus-per-task, else the CPUs it may run on. Never
    os.cpu_count(): on a shared node that counts every core, most of them other people's."""
    available = len(os.sched_getaffinity(0))
    from_slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if from_slurm.isdigit() and int(from_slurm) > 0:
        return min(int(from_slurm), available)
    return available


def use_allocated_threads(loader_workers: int = 0) -> int:
    """Give torch the allocation's CPUs, less one per data-loader worker, and say so."""
    import torch
    cpus = cpus_from_allocation()
    threads = max(1, cpus - loader_workers)
    torch.set_num_threads(threads)
    source = "SLURM_CPUS_PER_TASK" if "SLURM_CPUS_PER_TASK" in os.environ else "CPU affinity"
    log(f"threads: {threads} torch + {loader_workers} loader workers = {cpus} CPUs (from {source})")
    return threads
# --8<-- [end:threads]


# --8<-- [start:device]
PUMA_TORCH_FIX = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"


def pick_device():
    """The first GPU if torch sees one, else the CPU; logged. A GPU this PyTorch build has no
    kernels for (a V100S under a build for newer GPUs) stops the run here, in one line, instead of
    at the first operation on it."""
    import torch
    if not torch.cuda.is_available():
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = f"CUDA_VISIBLE_DEVICES={gpus} but torch sees no CUDA device" if gpus else "no GPU found"
        log(f"device: cpu ({why}; running on the CPU)")
        return torch.device("cpu")
    name = torch.cuda.get_device_name(0)
    major, minor = torch.cuda.get_device_capability(0)
    built_for = torch.cuda.get_arch_list()
    # sm_XY runs on exactly that GPU; compute_XY (PTX) is compiled for any GPU of XY or newer.
    on_ptx = any(arch.startswith("compute_") and int(arch.split("_")[1]) <= major * 10 + minor for arch in built_for)
    if f"sm_{major}{minor}" not in built_for and not on_ptx:
        refuse(f"the GPU {name} (sm_{major}{minor}) has no kernels in this PyTorch {torch.__version__} "
               f"(built for {' '.join(built_for)}); on Puma install the CUDA 12.6 build: {PUMA_TORCH_FIX}")
    log(f"device: cuda ({name}, sm_{major}{minor})")
    return torch.device("cuda")
# --8<-- [end:device]


# --8<-- [start:progress]
def log(message: str) -> None:
    """Print one line now: flushed, so it is in the Slurm log while the job runs."""
    print(message, flush=True)


class Progress:
    """One line per epoch or step: `Progress(total=10, unit="images").step(3, items=5123, loss=0.12)`
    prints `epoch 3/10  loss 0.12  5123 images/s  elapsed 0:00:01  left 0:00:02`."""

    def __init__(self, total: int, unit: str = "samples", label: str = "epoch", done: int = 0):
        self.total, self.unit, self.label = total, unit, label
        self.first = done  # a resumed run counts its time left from where it started again
        self.started = self.last = time.perf_counter()

    def step(self, done: int, items: int = 0, **metrics) -> None:
        now = time.perf_counter()
        elapsed = now - self.started
        parts = [f"{self.label} {done}/{self.total}"]
        parts += [f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}" for name, value in metrics.items()]
        if items:
            parts.append(f"{items / max(now - self.last, 1e-9):.0f} {self.unit}/s")
        left = elapsed / max(done - self.first, 1) * (self.total - done)
        parts += [f"elapsed {datetime.timedelta(seconds=round(elapsed))}", f"left {datetime.timedelta(seconds=round(left))}"]
        self.last = now
        log("  ".join(parts))
# --8<-- [end:progress]


# --8<-- [start:results]
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that it is always the old one or the whole new one: the bytes go to a
    temporary file in the same folder, reach the disk, and the file is renamed over `path` (a
    rename within one file system is atomic, so a killed job leaves no half file)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.umask(umask := os.umask(0o22))  # the only way to read the umask is to set it, and set it back
        os.fchmod(handle, 0o666 & ~umask)  # the permissions a plain open() would give, not mkstemp's 0600
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_figure(figure, path: Path) -> None:
    """Save a matplotlib figure (PNG, 150 dpi) atomically, show it in a notebook, and close it."""
    import matplotlib.pyplot as plt
    if IN_NOTEBOOK:  # the notebook form of an example: show the figure in the cell
        import IPython.display
        IPython.display.display(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    log(f"wrote {path}")


def write_metrics(out: Path, metrics: dict, started: float, device="cpu", threads: int | None = None, **run) -> None:
    """Write OUT/metrics.json: the example's numbers, and where, how and how long it ran."""
    versions = {"python": platform.python_version()} | {name: sys.modules[name].__version__ for name in ("torch", "sklearn", "numpy") if name in sys.modules}
    script = Path(sys.argv[0])
    command = ["python3", f"examples/{script.name}" if script.suffix == ".py" else script.name, *sys.argv[1:]]
    run = {
        "command": "(notebook)" if IN_NOTEBOOK else shlex.join(command),
        "host": platform.node(),
        "cpu": cpu_model(),
        "threads": threads if threads is not None else cpus_from_allocation(),
        "device": str(device),
        "gpu": sys.modules["torch"].cuda.get_device_name(0) if str(device).startswith("cuda") else None,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "versions": versions,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "finished": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        **run,
    }
    path = Path(out) / "metrics.json"
    atomic_write_bytes(path, (json.dumps({**metrics, "run": run}, indent=2) + "\n").encode())
    log(f"wrote {path}")


def cpu_model() -> str:
    """The CPU's model name, e.g. 'AMD EPYC 7642 48-Core Processor' (Linux), else the machine type."""
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def report_result(**values) -> None:
    """The last line of every run, `result: key=value ...`: what a Slurm log ends with."""
    log("result: " + " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in values.items()))
    if not IN_NOTEBOOK:  # the script is about to end; a notebook's kernel goes on
        # exit would search the libraries' millions of objects for garbage (2 s after torch); frozen ones are skipped
        gc.freeze()
# --8<-- [end:results]
