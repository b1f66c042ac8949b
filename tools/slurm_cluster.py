"""A throwaway single-node Slurm cluster for the tests and the benchmark, also started by hand.

    python -m tools.slurm_cluster up       # or `make slurm-up`: start one, print what to export
    python -m tools.slurm_cluster status   # is it up? where are its logs?
    python -m tools.slurm_cluster down     # or `make slurm-down`: stop it, delete its folder

Three real daemons, each with its own socket, ports, pid file and log inside one temporary
folder, so nothing touches the machine's own Slurm or munge set-up and two clusters (the
tests' and one started by hand) run side by side:

- munged, the authentication service, with a key made for this cluster;
- slurmctld, the controller, with Puma's partition names;
- slurmd, the one compute node.

The node is declared as one Puma GPU node: 94 CPUs, 5 GB of memory per CPU and four V100s,
although this machine has fewer CPUs, less memory and no GPU (`SlurmdParameters=config_overrides`
lets slurmd accept that). So a job file asks for what it would ask for on Puma, and is accepted
or refused here where Puma's limits would accept or refuse it (95 CPUs, 5 GPUs, 11 days, ...).
What a job really gets is this machine's cores (there is no CPU binding here); the examples use
min(SLURM_CPUS_PER_TASK, CPUs they may run on) threads (examples/workshop.py,
cpus_from_allocation), so a job asking for 8 CPUs runs with the cores this machine has. Jobs
are therefore started side by side only while their CPUs fit this machine's cores
(tools/slurm_jobs.py, which submits and waits): torch threads that share a core run many times
slower.

The GPUs are stand-ins: four character devices in the cluster's folder that are /dev/null
(gres.conf `File=`), so Slurm hands them out one by one like real GPUs and sets
CUDA_VISIBLE_DEVICES in the job; torch finds no CUDA device, and the Python falls back to the
CPU and says so. (Where device files cannot be made, one stand-in, /dev/null itself.)

Jobs see a real Lmod (`module load python/3.11`, `module load cuda12`) with stand-in modulefiles
in tools/modulefiles/ named like Puma's: python/3.11 puts the project's .venv first on the PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULEFILES = REPO / "tools" / "modulefiles"
LMOD_INIT = Path("/etc/profile.d/lmod.sh")

# Every cluster lives in a folder named PREFIX...; the one started by hand in MANUAL_ROOT.
TEMPORARY = Path(tempfile.gettempdir())
PREFIX = "workshop-slurm-"
MANUAL_ROOT = TEMPORARY / "workshop-slurm-by-hand"

# What the node pretends to be: one Puma node (see the module docstring).
NODE_CPUS = 94  # two sockets of 48 cores, of which 94 can be scheduled
MEMORY_PER_CPU_MB = 5 * 1024
GPUS = 4  # V100s per Puma GPU node
MAX_TIME = "10-00:00:00"  # Puma's longest batch job
PARTITIONS = ("standard", "windfall", "high_priority", "gpu_standard", "gpu_windfall", "gpu_high_priority")
DEFAULT_PARTITION = "standard"

# The executables the cluster needs, and the Debian packages that hold them.
NEEDED = {"munged": "munge", "slurmctld": "slurmctld", "slurmd": "slurmd", "sbatch": "slurm-client"}

STARTUP_TIMEOUT_S = 30


class ClusterError(RuntimeError):
    """The cluster could not start; the message ends with the tail of the daemons' logs."""


def missing_requirements() -> str | None:
    """Why this machine cannot run the cluster, or None if it can."""
    missing = [f"{program} (apt package {package})" for program, package in NEEDED.items() if not shutil.which(program)]
    if missing:
        return f"not installed: {', '.join(missing)}; run `scripts/setup.sh --tests` as root"
    if os.geteuid() != 0:
        return "the local Slurm runs its daemons as root and munged as user munge: run the tests as root"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "there is no user `munge` (the munge package creates it): reinstall munge"
    if not LMOD_INIT.is_file():
        return f"{LMOD_INIT} is missing: install the apt package lmod"
    return None


@dataclass
class SlurmCluster:
    """One running cluster, known by its folder. All paths derive from `root`."""

    root: Path

    # ---------------------------------------------------------------- the cluster's files
    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def job_cores(self) -> set[int]:
        """The CPU cores its jobs may run on: slurmd's (see `start`), which they inherit."""
        return os.sched_getaffinity(self.daemon_pid("slurmd"))

    def pid_file(self, daemon: str) -> Path:
        return (self.root / "munge" / "munged.pid") if daemon == "munged" else (self.root / "run" / f"{daemon}.pid")

    @property
    def node(self) -> str:
        return json.loads((self.root / "cluster.json").read_text())["node"]

    # ---------------------------------------------------------------- using it
    def environment(self) -> dict[str, str]:
        """The environment to run sbatch/squeue in: this cluster's SLURM_CONF, and a real Lmod
        with the stand-in modulefiles (MODULEPATH, and BASH_ENV so that `module` exists in a
        job's non-interactive bash, as it does on Puma)."""
        return {**os.environ, **json.loads((self.root / "lmod-environment.json").read_text()), "SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Slurm client command (sinfo, squeue, scontrol, ...) against this cluster."""
        return subprocess.run(command, env=self.environment(), capture_output=True, text=True, check=check, timeout=timeout)

    def node_state(self) -> str:
        result = self.run("sinfo", "--noheader", "--nodes", self.node, "--format=%T", check=False, timeout=10)
        return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else "unreachable"

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of each daemon's log, to print when something went wrong."""
        parts = []
        for log in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.log_dir / log if log != "munged.log" else self.root / "munge" / log
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.is_file() else ["(no log)"]
            parts.append(f"---- last lines of {path} ----\n" + "\n".join(text))
        return "\n".join(parts)

    def daemon_pid(self, daemon: str) -> int | None:
        """The pid of this cluster's `daemon` if it is running (checked against its command line,
        so a pid reused by another process is never taken for ours)."""
        try:
            pid = int(self.pid_file(daemon).read_text().split()[0])
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            return None
        return pid if daemon in command_line and str(self.root) in command_line else None

    def is_up(self) -> bool:
        return all(self.daemon_pid(d) for d in ("munged", "slurmctld", "slurmd")) and self.node_state() in ("idle", "mixed", "allocated")

    def usage(self) -> str:
        """How to use this cluster from a shell."""
        return (
            f"A local Slurm is up (folder {self.root}, node {self.node}).\n"
            f"To use it from your shell:\n"
            f"    source {self.root / 'env.sh'}\n"
            f"then, from the repository root, for example:\n"
            f"    sbatch --account=test_group --export=ALL,WORKSHOP_QUICK=1,WORKSHOP_VENV={REPO / '.venv'} slurm/hello_job.sbatch\n"
            f"    squeue; sinfo\n"
            f"Logs: {self.log_dir}/slurmctld.log and slurmd.log. Stop it with `make slurm-down`."
        )

    # ---------------------------------------------------------------- starting and stopping
    @classmethod
    def start(cls, root: Path | None = None, by_hand: bool = False, cores: list[int] | None = None) -> SlurmCluster:
        """Start munged, slurmctld and slurmd in a new folder and wait until the node is idle.

        `cores`: the CPU cores the jobs may run on (default: all of this process's). Puma confines
        a job to its allocated cores with cgroups; here, without cgroups, slurmd's CPU affinity
        does, which its jobs inherit. Without it a job asking for 4 CPUs runs as many torch
        threads as this machine has cores, beside the tests' other processes: threads that share
        a core spin and wait, and the job runs several times slower.

        The cluster belongs to this process: once it has ended, the next start of a cluster
        stops this one if it is still running (the test run was killed). A cluster started
        `by_hand` runs until `down`. On any failure everything started so far is stopped, the
        folder removed, and the error carries the logs' tails.
        """
        owner = None if by_hand else os.getpid()
        problem = missing_requirements()
        if problem:
            raise ClusterError(problem)
        stop_stale_clusters()
        if root is None:
            root = Path(tempfile.mkdtemp(prefix=PREFIX))
        else:
            root.mkdir(parents=True)
        root.chmod(0o755)  # munged runs as user munge and must reach its own folder inside
        cluster = cls(root)
        try:
            cluster._write_files(owner)
            cluster._start_munged()
            cluster._start_slurm(cores)
        except BaseException as error:
            tail = cluster.log_tail()
            cluster.stop()
            if isinstance(error, (ClusterError, subprocess.SubprocessError, OSError)):
                raise ClusterError(f"the local Slurm did not start: {error}\n{tail}") from error
            raise
        return cluster

    def stop(self) -> None:
        """Cancel every job, stop the daemons by their pids, and delete the folder."""
        if self.daemon_pid("slurmctld"):
            self.run("scancel", "--full", "--quiet", f"--user={pwd.getpwuid(os.geteuid()).pw_name}", check=False, timeout=10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.run("squeue", "--noheader", check=False, timeout=10).stdout.strip():
                time.sleep(0.2)
        _terminate([pid for pid in map(self.daemon_pid, ("slurmd", "slurmctld", "munged")) if pid])
        shutil.rmtree(self.root, ignore_errors=True)

    # ---------------------------------------------------------------- the set-up, step by step
    def _write_files(self, owner: int | None) -> None:
        node = socket.gethostname().split(".")[0]
        for folder in ("etc", "state", "spool", "run", "log"):
            (self.root / folder).mkdir()
        (self.root / "cluster.json").write_text(json.dumps({"node": node, "owner": owner}) + "\n")
        controller_port, node_port = free_ports(2)
        # slurmd reads gres.conf from the folder of slurm.conf
        gpu_files = stand_in_gpus(self.root / "dev")
        gpus = f"File={gpu_files[0]}" if len(gpu_files) == 1 else f"File={gpu_files[0].parent}/nvidia[0-{len(gpu_files) - 1}]"
        (self.conf.parent / "gres.conf").write_text(f"NodeName={node} Name=gpu Type=volta {gpus}\n")
        self.conf.write_text(slurm_conf(self.root, node, controller_port, node_port, self.munge_socket, len(gpu_files)))
        lmod = lmod_environment()
        (self.root / "lmod-environment.json").write_text(json.dumps(lmod, indent=1) + "\n")
        (self.root / "env.sh").write_text(
            "# source this file to use the local test Slurm and the stand-in modules from a shell\n"
            f"export SLURM_CONF={shlex.quote(str(self.conf))}\n"
            f"source {LMOD_INIT}\n"
            f"export MODULEPATH={shlex.quote(lmod['MODULEPATH'])}\n"
        )

    def _start_munged(self) -> None:
        """munged refuses to run as root or with a key others can read: give it its own folder
        and key, owned by user munge (the folder must be searchable by all, for its socket)."""
        munge = pwd.getpwnam("munge")
        folder = self.munge_socket.parent
        folder.mkdir()
        folder.chmod(0o711)
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for path in (folder, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        result = subprocess.run(
            [
                "runuser", "-u", "munge", "--", shutil.which("munged"),
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={self.pid_file('munged')}",
                f"--log-file={folder / 'munged.log'}",
                f"--seed-file={folder / 'munged.seed'}",
            ],
            capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S,
        )  # fmt: skip
        if result.returncode != 0:
            raise ClusterError(f"munged exited with {result.returncode}: {result.stderr.strip()}")
        _wait_for(lambda: self.munge_socket.exists() and self.daemon_pid("munged"), "munged to open its socket")

    def _start_slurm(self, cores: list[int] | None) -> None:
        environment = self.environment()
        for daemon in ("slurmctld", "slurmd"):
            pin = (lambda: os.sched_setaffinity(0, cores)) if daemon == "slurmd" and cores else None
            result = subprocess.run(
                [shutil.which(daemon), "-f", str(self.conf)], env=environment, capture_output=True, text=True,
                timeout=STARTUP_TIMEOUT_S, preexec_fn=pin,
            )
            if result.returncode != 0:
                raise ClusterError(f"{daemon} exited with {result.returncode}: {result.stderr.strip()}")
        _wait_for(lambda: self.node_state() == "idle", f"node {self.node} to be idle", self.node_state)


def slurm_conf(root: Path, node: str, controller_port: int, node_port: int, munge_socket: Path, gpus: int) -> str:
    """slurm.conf for one node declared like a Puma node, with Puma's partition names."""
    node_memory = NODE_CPUS * MEMORY_PER_CPU_MB
    lines = [
        "# A throwaway single-node cluster for the workshop's tests (tools/slurm_cluster.py).",
        "ClusterName=workshop",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={controller_port}",
        f"SlurmdPort={node_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        # cred_expire: a requeued job is held until the launch credential of its last start has
        # expired (120 s by default). 10 s lets the requeue tests finish quickly; starting the
        # job earlier by hand (scontrol update StartTime=now) races with that credential.
        f"AuthInfo=socket={munge_socket},cred_expire=10",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/run/slurmctld.pid",
        f"SlurmdPidFile={root}/run/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.log",
        # no systemd and no cgroups in a container: track processes by their parents
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # the node may claim more CPUs and memory than the machine has (see the module docstring)
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        # reject at submission a job that can never run, instead of letting `sbatch --wait` hang
        "EnforcePartLimits=ALL",
        # memory follows the CPUs asked for, as on Puma; without it a job takes the whole node
        f"DefMemPerCPU={MEMORY_PER_CPU_MB}",
        # an ended job stays listed (scontrol show job) for at least 4 s: long enough for
        # tools/slurm_jobs.py, which looks twice a second; and `sbatch --wait`, typed by hand,
        # polls every 2 s only while 2 >= MinJobAge/2 (a larger one backs off to 8 s, then 32 s)
        "MinJobAge=4",
        # start jobs as soon as they are submitted (by default batch jobs may wait up to 3 s, to
        # schedule many at once) and look at pending jobs every 2 s, not 60
        "SchedulerParameters=batch_sched_delay=0,sched_interval=2",
        "SlurmdTimeout=30",
        "GresTypes=gpu",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} Boards=1 SocketsPerBoard=2 CoresPerSocket={NODE_CPUS // 2} ThreadsPerCore=1 RealMemory={node_memory} Gres=gpu:volta:{gpus} State=UNKNOWN",
    ]
    for partition in PARTITIONS:
        default = "YES" if partition == DEFAULT_PARTITION else "NO"
        lines.append(f"PartitionName={partition} Nodes={node} Default={default} MaxTime={MAX_TIME} State=UP")
    return "\n".join(lines) + "\n"


def stand_in_gpus(folder: Path) -> list[Path]:
    """Four device files that behave like /dev/null, named like NVIDIA's (nvidia0..3); where
    device files cannot be made (no CAP_MKNOD), /dev/null itself as the one stand-in."""
    folder.mkdir()
    try:
        for index in range(GPUS):
            os.mknod(folder / f"nvidia{index}", 0o666 | stat.S_IFCHR, os.stat("/dev/null").st_rdev)
    except OSError:
        return [Path("/dev/null")]
    return [folder / f"nvidia{index}" for index in range(GPUS)]


def lmod_environment() -> dict[str, str]:
    """The variables a login shell on Puma has for `module`: Lmod's own, a MODULEPATH with the
    stand-in modulefiles only, and BASH_ENV (Lmod's init, read by every non-interactive bash,
    which is how a job script gets the `module` function)."""
    script = f"source {LMOD_INIT} >/dev/null 2>&1; export MODULEPATH={shlex.quote(str(MODULEFILES))}; env -0"
    before = dict(os.environ)
    output = subprocess.run(["bash", "-c", script], capture_output=True, check=True, timeout=30, env=before).stdout
    after = dict(item.split("=", 1) for item in output.decode().split("\0") if "=" in item)
    wanted = {key: value for key, value in after.items() if before.get(key) != value and key not in ("SHLVL", "_", "PWD", "OLDPWD", "USER")}
    if "BASH_ENV" not in wanted or "LMOD_CMD" not in wanted:
        raise ClusterError(f"sourcing {LMOD_INIT} did not set up Lmod (no BASH_ENV/LMOD_CMD)")
    return wanted


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now (the kernel picks them), so two clusters never clash."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def stop_stale_clusters() -> None:
    """Stop clusters left behind by an earlier test run that died without cleaning up (the
    process that started it is gone). A cluster started by hand is left alone."""
    for root in sorted(TEMPORARY.glob(PREFIX + "*")):
        try:
            owner = json.loads((root / "cluster.json").read_text())["owner"]
        except (OSError, ValueError, KeyError):  # not one of ours, or not yet: no daemon runs there
            continue
        if owner is not None and not Path(f"/proc/{owner}").exists():
            SlurmCluster(root).stop()


def _terminate(pids: list[int], grace_s: float = 10) -> None:
    """SIGTERM to each process (they shut down side by side), then SIGKILL to any that has not
    ended after `grace_s` seconds."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_signal(pid, 0) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, number: int) -> bool:
    """Send a signal; False if the process no longer exists."""
    try:
        os.kill(pid, number)
        return True
    except ProcessLookupError:
        return False


def _wait_for(condition, what: str, state=None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    now = f" (now: {state()})" if state else ""
    raise ClusterError(f"gave up after {STARTUP_TIMEOUT_S} s waiting for {what}{now}")


# ------------------------------------------------------------------------------------------------
# By hand: python -m tools.slurm_cluster up|down|status
# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.slurm_cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down", "status"), help="start, stop, or describe the cluster")
    args = parser.parse_args(argv)
    cluster = SlurmCluster(MANUAL_ROOT)
    if args.action == "down":
        if not MANUAL_ROOT.exists():
            print("slurm_cluster: no cluster started by hand is running")
            return 0
        cluster.stop()
        print(f"slurm_cluster: stopped, and removed {MANUAL_ROOT}")
        return 0
    if MANUAL_ROOT.exists() and cluster.is_up():
        print(cluster.usage())
        return 0
    if args.action == "status":
        print("slurm_cluster: not running; start it with `make slurm-up`")
        return 1
    if MANUAL_ROOT.exists():  # left over from a cluster that died: start afresh
        cluster.stop()
    started = time.monotonic()
    try:
        cluster = SlurmCluster.start(MANUAL_ROOT, by_hand=True)
    except ClusterError as error:
        print(f"slurm_cluster: {error}", file=sys.stderr)
        return 1
    print(f"slurm_cluster: started in {time.monotonic() - started:.1f} s")
    print(cluster.usage())
    return 0


if __name__ == "__main__":
    sys.exit(main())
