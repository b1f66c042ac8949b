"""The shell and Python blocks on the site's pages run, the way a reader would run them.

The blocks are found with pytest-codeblocks' extractor, so a page marks a block that cannot run
here the way that plugin reads it, on the line before the block:

    <!--pytest.mark.skip(reason="Puma only: loads Puma's environment modules")-->

A skip without a reason is an error. A block that only includes a file (`--8<-- "..."`) is left
to that file's own tests. An example's "try it quickly" block, `python3 examples/<name>.py --quick
--out results/<name>_quick`, is the contract's quick run (tests/test_example_contract.py runs that
command, with another --out): it is marked with CONTRACT_QUICK_RUN, so it runs once, not twice,
and a test checks that the marked block is exactly that command. A skipped block that later blocks depend on has a stand-in here
(STAND_INS), run in its place: the setup page's PyTorch from PyTorch's own index, which this
machine cannot reach, is the same pin from the machine's local wheels.

All runnable blocks of one page run in order in one bash session, as a reader types them into one
terminal: what one block sets up (an activated environment, a variable) the next one uses. Each
page gets a fresh home folder and a scratch copy of the repository as its working folder. The
setup page starts from a bare shell (the machine's own `python3`); every other page starts where
the setup page leaves a reader: with the project's environment, built from the same
requirements, active.

The setup page really creates its environment and pip-installs PyTorch and the examples'
libraries into it (from this machine's local wheels: about a minute), then the Jupyter kernel it
registers is started, with the modules its kernel.json loads, and asked to import torch.
"""

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, VENV, skip_or_fail
from pytest_codeblocks import extract_from_file
from tools.slurm_jobs import scratch_copy

DOCS = REPO / "docs"
SETUP_PAGE = "setup.md"
# Fence languages that are commands: run by bash, or by the session's python3.
LANGUAGES = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python", "python3": "python"}
BLOCK_MARKER = "@@ code block at line "
# A skipped block containing the key runs the value instead (what its reason says the tests do).
STAND_INS = {"--index-url https://download.pytorch.org/whl/cu126": "python3 -m pip install torch==2.13.0"}
TIMEOUT_S = 600
CONTRACT_QUICK_RUN = "the example's quick run: tests/test_example_contract.py runs this command"


@dataclass
class Block:
    page: str
    line: int
    language: str
    code: str
    skip_reason: str | None
    marks_ok: bool = True


def page_blocks(path: Path) -> list[Block]:
    """The command blocks of one page (bash or Python), with their skip reasons."""
    blocks = []
    for found in extract_from_file(path):
        language = (found.syntax or "").strip().lstrip("{.").split(" ")[0].lower()
        if language not in LANGUAGES:
            continue
        lines = [line for line in found.code.splitlines() if line.strip()]
        if lines and all(line.strip().startswith("--8<--") for line in lines):
            continue  # an included file: tested by its own tests
        reason, marks_ok = None, True
        for text in found.marks:
            mark = eval(text, {"pytest": pytest}).mark
            if mark.name == "skip":
                reason = mark.kwargs.get("reason") or (mark.args[0] if mark.args else "")
                marks_ok = marks_ok and bool(reason and reason.strip())
            else:
                marks_ok = False
        blocks.append(Block(path.relative_to(DOCS).as_posix(), found.lineno, LANGUAGES[language], found.code, reason, marks_ok))
    return blocks


PAGES = sorted(DOCS.rglob("*.md"))
BLOCKS = [block for page in PAGES for block in page_blocks(page)]
PAGES_TO_RUN = sorted({block.page for block in BLOCKS if block.skip_reason is None})


def session_script(blocks: list[Block], scratch: Path) -> str:
    """One bash script: each runnable block in order, announced on stdout before it runs."""
    parts = ["set -eo pipefail"]
    for block in blocks:
        if block.skip_reason is not None:
            stand_ins = [command for key, command in STAND_INS.items() if key in block.code]
            if stand_ins:
                parts += [f"echo '{BLOCK_MARKER}{block.line} (stand-in: {stand_ins[0]})'", stand_ins[0]]
            continue
        parts.append(f"echo '{BLOCK_MARKER}{block.line}'")
        if block.language == "python":
            script = scratch / f"block_{block.line}.py"
            script.write_text(block.code)
            parts.append(f"python3 {script}")
        else:
            parts.append(block.code)
    return "\n".join(parts) + "\n"


def reader_environment(home: Path, page: str) -> dict[str, str]:
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if Path(entry) != VENV / "bin"]
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(HOME=str(home), SLURM_CPUS_PER_TASK="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    # pip would compile every installed module to bytecode up front (40 s of CPU here); Python
    # compiles what it imports anyway, so the tests skip that step. PIP_COMPILE=0 is --no-compile:
    # pip reads its switches named --no-X inverted, and PIP_NO_COMPILE=1 would mean --compile.
    env["PIP_COMPILE"] = "0"
    if page != SETUP_PAGE:
        env["VIRTUAL_ENV"] = str(VENV)
        path.insert(0, str(VENV / "bin"))
    env["PATH"] = os.pathsep.join(path)
    return env


@dataclass
class PageRun:
    returncode: int
    output: str
    home: Path
    env: dict

    def failed_block(self) -> str:
        started = re.findall(re.escape(BLOCK_MARKER) + r"(\d+)", self.output)
        return f"line {started[-1]}" if started else "before the first block"


@pytest.fixture(scope="module")
def run_page(tmp_path_factory):
    """Runs a page's blocks once (later calls for the same page get the same run)."""
    runs: dict[str, PageRun] = {}

    def run(page: str) -> PageRun:
        if page not in runs:
            sandbox = tmp_path_factory.mktemp(re.sub(r"\W", "-", page))
            home, work = sandbox / "home", sandbox / "repository"
            home.mkdir()
            work.mkdir()
            scratch_copy(work)
            script = session_script([b for b in BLOCKS if b.page == page], sandbox)
            env = reader_environment(home, page)
            done = subprocess.run(
                ["bash", "-c", script], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, timeout=TIMEOUT_S,
            )
            runs[page] = PageRun(done.returncode, done.stdout, home, env)
        return runs[page]

    return run


def test_the_pages_have_code_blocks_and_some_run_here():
    assert BLOCKS, f"no bash or Python blocks found in {len(PAGES)} pages under docs/"
    assert PAGES_TO_RUN, "every code block on the site is marked skip: none runs in the tests"
    assert SETUP_PAGE in PAGES_TO_RUN, f"no block of {SETUP_PAGE} runs in the tests"


def test_every_skipped_block_says_why():
    unexplained = [f"{b.page}, line {b.line}" for b in BLOCKS if not b.marks_ok]
    assert not unexplained, (
        "these blocks carry a mark other than pytest.mark.skip(reason=...) or a skip without a reason: "
        + ", ".join(unexplained)
    )


def test_a_block_left_to_the_contract_is_exactly_the_contracts_quick_run():
    from example_contracts import BY_NAME

    left = [block for block in BLOCKS if block.skip_reason == CONTRACT_QUICK_RUN]
    assert left, "no page's quick-run block is left to the contract test: drop CONTRACT_QUICK_RUN"
    for block in left:
        command = re.fullmatch(r"python3 examples/(\w+)\.py --quick --out results/(\w+)_quick", block.code.strip())
        assert command and command.group(1) == command.group(2), (
            f"{block.page}, line {block.line}: a block marked {CONTRACT_QUICK_RUN!r} must be only "
            f"`python3 examples/<name>.py --quick --out results/<name>_quick`, not:\n{block.code}"
        )
        example = BY_NAME.get(command.group(1))
        assert example and example.quick_args == ("--quick",), (
            f"{block.page}, line {block.line}: the contract's quick run of {command.group(1)} is not `--quick` alone"
        )
        readers = [later.line for later in BLOCKS if later.page == block.page and later.line > block.line
                   and later.skip_reason is None and f"results/{command.group(1)}_quick" in later.code]  # fmt: skip
        assert not readers, (
            f"{block.page}: the blocks at lines {readers} read what the quick run at line {block.line} writes, "
            "so that block must run on the page: drop its mark"
        )


def test_every_stand_in_replaces_a_skipped_block():
    for key in STAND_INS:
        assert any(key in block.code for block in BLOCKS if block.skip_reason), f"no skipped block contains {key!r}: drop its stand-in"


def same_process(page: str):
    """Tests that use one page's run go to the same pytest-xdist process (tests/scheduling.py)."""
    return pytest.mark.xdist_group(f"code blocks of {page}")


@pytest.mark.parametrize("page", [pytest.param(page, marks=same_process(page)) for page in PAGES_TO_RUN])
def test_code_blocks_of_the_page_run_in_order(page, run_page):
    run = run_page(page)
    assert run.returncode == 0, (
        f"{page}: the block at {run.failed_block()} failed (exit {run.returncode}); output:\n{run.output[-4000:]}"
    )


@same_process(SETUP_PAGE)
def test_setup_page_kernel_starts_the_environments_python_after_loading_its_modules(run_page):
    run = run_page(SETUP_PAGE)
    assert run.returncode == 0, f"the setup page's blocks failed at {run.failed_block()}:\n{run.output[-3000:]}"
    kernel_json = run.home / ".local/share/jupyter/kernels/ml-workshop/kernel.json"
    kernel = json.loads(kernel_json.read_text())
    environment_python = run.home / "venvs/ml-workshop/bin/python3"
    pattern = r"module load python/3\.11( cuda12)?; exec (\S+) -m ipykernel_launcher -f \{connection_file\}"
    assert kernel["argv"][:2] == ["bash", "-c"] and re.fullmatch(pattern, kernel["argv"][2]), kernel["argv"]
    assert re.fullmatch(pattern, kernel["argv"][2]).group(2) == str(environment_python), kernel["argv"]

    # The file the page shows is the file the commands wrote (with the reader's home folder).
    shown = re.search(r"```json\n(.*?)\n```", (DOCS / SETUP_PAGE).read_text(), flags=re.S).group(1)
    shown = json.loads(shown.replace("/home/u00/netid", str(run.home)))
    assert {key: kernel[key] for key in shown} == shown, f"the page shows\n{shown}\nthe commands wrote\n{kernel}"

    # Start that kernel as Jupyter would, with the modules (the tests' stand-ins for Puma's).
    if not Path("/etc/profile.d/lmod.sh").is_file():
        skip_or_fail("Lmod is missing (apt-get install lmod; `make test` does it as root)")
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from tools.slurm_cluster import lmod_environment

    specs = KernelSpecManager(kernel_dirs=[str(kernel_json.parent.parent)])
    manager = KernelManager(kernel_name="ml-workshop", kernel_spec_manager=specs)
    manager.start_kernel(env={**run.env, **lmod_environment()})
    printed = []
    try:
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=120)
        client.execute_interactive(
            "import sys, torch; print(sys.executable, torch.__version__)",
            timeout=120,
            output_hook=lambda msg: printed.append(msg["content"].get("text", "")),
        )
        client.stop_channels()
    finally:
        manager.shutdown_kernel(now=True)
    executable, version = "".join(printed).split()[:2]
    assert executable == str(environment_python) and version.startswith("2.13.0"), printed
