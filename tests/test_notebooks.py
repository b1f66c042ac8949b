"""Every example is also a notebook (for Jupyter on Open OnDemand): made from the script by the
site's hook, and run here cell by cell in quick mode, as a reader would run it. A notebook is a
notebook only if most of its cells show something (the data, the model, the loss falling, a
figure), not just the last one."""

import json
import os
import re
import shutil

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient

from conftest import REPO

from hooks.notebooks import modules_beside, notebook_scripts, to_notebook

SCRIPTS = notebook_scripts(REPO / "examples")
INCLUDED_BY_EXAMPLE_PAGES = sorted(
    {
        name
        for page in (REPO / "docs" / "examples").glob("*.md")
        for name in re.findall(r'(?:--8<--\s+|lesson\()"examples/(\w+)\.py"', page.read_text())
        if name not in ("workshop", "digits")
    }
)


def test_every_example_page_script_can_be_a_notebook():
    assert INCLUDED_BY_EXAMPLE_PAGES, "no page in docs/examples/ includes an example script"
    without_cells = [name for name in INCLUDED_BY_EXAMPLE_PAGES if REPO / "examples" / f"{name}.py" not in SCRIPTS]
    assert not without_cells, f"these example scripts have no `# %%` cells, so no notebook: {without_cells}"


@pytest.fixture(scope="module")
def kernel():
    """One Jupyter kernel for the notebooks, in quick mode on one thread (the tests share two
    cores). Starting one per notebook would import PyTorch and the rest again each time (about
    10 s of CPU on this project's machines); each notebook starts in a namespace emptied by
    FRESH_START instead, as if in a kernel of its own, and the first one really is."""
    environment = {**os.environ, "WORKSHOP_QUICK": "1", "SLURM_CPUS_PER_TASK": "1", "MPLBACKEND": "Agg"}
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=environment)
    yield manager
    manager.shutdown_kernel(now=True)


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


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_notebook_form_runs_in_quick_mode_and_writes_its_metrics(script, tmp_path, kernel):
    # The reader's folder: the downloaded notebook beside workshop.py (and the other modules it
    # imports), as the page tells them.
    for module in modules_beside(script):
        shutil.copy(REPO / module, tmp_path)
    notebook = nbformat.reads(to_notebook(script), as_version=4)
    project_modules = sorted(path.stem for path in (REPO / "examples").glob("*.py"))
    start = FRESH_START.format(project_modules=project_modules, folder=str(tmp_path))
    notebook.cells.insert(0, nbformat.v4.new_code_cell(start))
    NotebookClient(notebook, timeout=300, km=kernel).execute()
    del notebook.cells[0]

    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    silent = [cell.source.strip().splitlines()[0] for cell in code_cells if cell.source.strip() and not cell.get("outputs")]
    assert len(silent) < len(code_cells) / 2, (
        f"{len(silent)} of {len(code_cells)} code cells show nothing when run; a reader sees output after most cells. "
        f"Silent cells start with: {silent}"
    )
    printed = "".join(output.get("text", "") for cell in code_cells for output in cell.get("outputs", []))
    assert re.search(r"^result: ", printed, re.MULTILINE), f"the notebook printed no result line:\n{printed[-2000:]}"
    metrics = json.loads((tmp_path / "results" / script.stem / "metrics.json").read_text())
    assert metrics["run"]["versions"]["python"]
