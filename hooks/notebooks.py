"""MkDocs hook: offer every example as a Jupyter notebook, made from the example script itself.

An example script with jupytext `# %%` cells *is* the notebook: at build time each one is
converted (jupytext, "percent" format) into notebooks/<name>.ipynb in the built site, next to a
copy of the project modules it imports (workshop.py, digits.py, ...: found as the downloads hook
finds them). There is no second copy to keep in step. A page links
to `../notebooks/<name>.ipynb`; the link is checked like any other.
"""

from pathlib import Path

import jupytext
from downloads import files_of
from mkdocs.structure.files import File

EXAMPLES = Path("examples")


def notebook_scripts(examples: Path = EXAMPLES) -> list[Path]:
    """The example scripts that have notebook cells."""
    return sorted(path for path in examples.glob("*.py") if "\n# %%" in path.read_text())


def modules_beside(script: Path) -> list[Path]:
    """The project modules a notebook imports, offered beside it (workshop.py, digits.py, ...)."""
    return [path for path in files_of(script.stem) if path.suffix == ".py" and path.stem != script.stem]


def to_notebook(script: Path) -> str:
    notebook = jupytext.reads(script.read_text(), fmt="py:percent")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return jupytext.writes(notebook, fmt="ipynb")


def on_files(files, config):
    imported = set()
    for script in notebook_scripts():
        files.append(File.generated(config, f"notebooks/{script.stem}.ipynb", content=to_notebook(script)))
        imported |= set(modules_beside(script))
    for module in sorted(imported):
        files.append(File.generated(config, f"notebooks/{module.name}", content=module.read_text()))
    return files
