"""MkDocs hook: offer every example as a Jupyter notebook, made from the example script itself.

An example script with jupytext `# %%` cells *is* the notebook: at build time each one is
converted (jupytext, "percent" format) into notebooks/<name>.ipynb in the built site, next to a
copy of the modules it imports (workshop.py, digits.py). There is no second copy to keep in step. A page links
to `../notebooks/<name>.ipynb`; the link is checked like any other.
"""

from pathlib import Path

import jupytext
from mkdocs.structure.files import File

EXAMPLES = Path("examples")
SHARED_MODULES = [EXAMPLES / "workshop.py", EXAMPLES / "digits.py"]


def notebook_scripts(examples: Path = EXAMPLES) -> list[Path]:
    """The example scripts that have notebook cells."""
    return sorted(path for path in examples.glob("*.py") if "\n# %%" in path.read_text())


def to_notebook(script: Path) -> str:
    notebook = jupytext.reads(script.read_text(), fmt="py:percent")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return jupytext.writes(notebook, fmt="ipynb")


def on_files(files, config):
    for script in notebook_scripts():
        files.append(File.generated(config, f"notebooks/{script.stem}.ipynb", content=to_notebook(script)))
    for module in SHARED_MODULES:
        files.append(File.generated(config, f"notebooks/{module.name}", content=module.read_text()))
    return files
