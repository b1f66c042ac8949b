"""Every example is also a notebook (for Jupyter on Open OnDemand): made from the script by the
site's hook, and run here cell by cell in quick mode, as a reader would run it. A notebook is a
notebook only if most of its cells show something (the data, the model, the loss falling, a
figure), not just the last one. The runs are tests/notebook_fixtures.py's `notebook_run`."""

import re

import pytest

from conftest import REPO
from notebook_fixtures import NOTEBOOK_EXAMPLES

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
    without_cells = [name for name in INCLUDED_BY_EXAMPLE_PAGES if name not in NOTEBOOK_EXAMPLES]
    assert not without_cells, f"these example scripts have no `# %%` cells, so no notebook: {without_cells}"


def notebook_cases():
    # In its example's group (tests/scheduling.py): the contract's same-seed test reuses the run.
    return [pytest.param(name, id=name, marks=pytest.mark.xdist_group(name)) for name in sorted(NOTEBOOK_EXAMPLES)]


@pytest.mark.parametrize("name", notebook_cases())
def test_notebook_form_runs_in_quick_mode_and_writes_its_metrics(name, notebook_run):
    run = notebook_run(name)
    code_cells = [cell for cell in run.notebook.cells if cell.cell_type == "code"]
    silent = [cell.source.strip().splitlines()[0] for cell in code_cells if cell.source.strip() and not cell.get("outputs")]
    assert len(silent) < len(code_cells) / 2, (
        f"{len(silent)} of {len(code_cells)} code cells show nothing when run; a reader sees output after most cells. "
        f"Silent cells start with: {silent}"
    )
    printed = "".join(output.get("text", "") for cell in code_cells for output in cell.get("outputs", []))
    assert re.search(r"^result: ", printed, re.MULTILINE), f"the notebook printed no result line:\n{printed[-2000:]}"
    assert run.metrics["run"]["versions"]["python"]
