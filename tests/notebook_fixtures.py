"""The `notebook_run` fixture: an example's notebook form, run cell by cell in quick mode as a
reader runs it in Jupyter, once per test process.

    run = notebook_run("digits_cnn")  # a NotebookRun: the executed notebook, its folder, its metrics

The notebook is made from the script by the site's hook (hooks/notebooks.py) and runs in the
reader's folder: the notebook beside workshop.py and the other modules it imports, as the page
tells them. Its metrics are also the contract's second run with the same seed
(tests/test_example_contract.py): another interpreter, with another hash seed, that must reach
the script's numbers.

One Jupyter kernel per test process serves every notebook, in quick mode on one thread (the tests
share two cores): starting one per notebook would import PyTorch and the rest again each time
(about 10 s of CPU on this project's machines). Each notebook starts in a namespace emptied by
FRESH_START instead, as if in a kernel of its own, and the first one really is.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import REPO
from hooks.notebooks import modules_beside, notebook_scripts, to_notebook

NOTEBOOK_EXAMPLES = frozenset(script.stem for script in notebook_scripts(REPO / "examples"))

# Run before a notebook's own cells: no variable, figure or project module (workshop.py, ...) of
# the notebook before it is left, and the notebook's folder is the working folder.
FRESH_START = """\
%reset -f
import os, sys, matplotlib.pyplot
matplotlib.pyplot.close("all")
for name in {project_modules!r}:
    sys.modules.pop(name, None)
os.chdir({folder!r})
sys.path[:] = [{folder!r}] + [entry for entry in sys.path if entry and not os.path.isfile(os.path.join(entry, "workshop.py"))]
"""


@dataclass
class NotebookRun:
    notebook: nbformat.NotebookNode  # the executed cells, with their outputs
    folder: Path  # the reader's folder it ran in
    error: str | None  # why a cell failed, if one did

    @property
    def metrics(self) -> dict:
        return json.loads((self.folder / "results" / self.folder.name / "metrics.json").read_text())


@pytest.fixture(scope="session")
def notebook_run(tmp_path_factory):
    """notebook_run(name): the notebook form of examples/<name>.py, run once per test process. A
    test that asks for a notebook that failed fails, with the failing cell's error."""
    runs: dict[str, NotebookRun] = {}
    kernels: list[KernelManager] = []

    def run(name: str) -> NotebookRun:
        if name not in runs:
            if not kernels:
                kernel = KernelManager(kernel_name="python3")
                kernel.start_kernel(env={**os.environ, "WORKSHOP_QUICK": "1", "SLURM_CPUS_PER_TASK": "1", "MPLBACKEND": "Agg"})
                kernels.append(kernel)
            script = REPO / "examples" / f"{name}.py"
            folder = tmp_path_factory.mktemp("notebooks", numbered=True) / name
            folder.mkdir()
            for module in modules_beside(script):
                shutil.copy(REPO / module, folder)
            notebook = nbformat.reads(to_notebook(script), as_version=4)
            project_modules = sorted(path.stem for path in (REPO / "examples").glob("*.py"))
            notebook.cells.insert(0, nbformat.v4.new_code_cell(FRESH_START.format(project_modules=project_modules, folder=str(folder))))
            try:
                NotebookClient(notebook, timeout=300, km=kernels[0]).execute()
                error = None
            except CellExecutionError as failed:
                error = str(failed)
            del notebook.cells[0]
            runs[name] = NotebookRun(notebook, folder, error)
        if runs[name].error:
            pytest.fail(f"the notebook form of examples/{name}.py failed:\n{runs[name].error[-3000:]}", pytrace=False)
        return runs[name]

    yield run
    for kernel in kernels:
        kernel.shutdown_kernel(now=True)
