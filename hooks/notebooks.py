"""MkDocs hook: offer every example as a Jupyter notebook, made from the example script itself.

An example script with jupytext `# %%` cells *is* the notebook: at build time each one is
converted (jupytext, "percent" format) into notebooks/<name>.ipynb in the built site, next to a
copy of the project modules it imports (workshop.py, digits.py, ...: found as the downloads hook
finds them). There is no second copy to keep in step. A page links
to `../notebooks/<name>.ipynb`; the link is checked like any other.

A script is converted once per version of its text: the notebook is kept in .cache/notebooks/,
named by the hash of the script and of jupytext's version, and the lessons hook reads the same
notebook. An unchanged script gives the same notebook, cell ids included, at every build.
"""

import hashlib
from importlib.metadata import version
from pathlib import Path

from downloads import files_of
from drawing import BUILD_CACHE, write_whole
from mkdocs.structure.files import File

EXAMPLES = Path("examples")
CACHE = BUILD_CACHE / "notebooks"


def notebook_scripts(examples: Path = EXAMPLES) -> list[Path]:
    """The example scripts that have notebook cells."""
    return sorted(path for path in examples.glob("*.py") if "\n# %%" in path.read_text())


def modules_beside(script: Path) -> list[Path]:
    """The project modules a notebook imports, offered beside it (workshop.py, digits.py, ...)."""
    return [path for path in files_of(script.stem) if path.suffix == ".py" and path.stem != script.stem]


def to_notebook(script: Path) -> str:
    """The script as a notebook (.ipynb text), from the cache when this version was converted before."""
    text = script.read_text()
    key = hashlib.sha256("\0".join(("jupytext", version("jupytext"), text)).encode()).hexdigest()
    cached = CACHE / f"{key}.ipynb"
    if cached.is_file():
        return cached.read_text()
    import jupytext  # only for a script that changed: its import alone takes half a second

    notebook = jupytext.reads(text, fmt="py:percent")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    converted = jupytext.writes(notebook, fmt="ipynb")
    write_whole(cached, converted)
    return converted


def on_files(files, config):
    imported = set()
    for script in notebook_scripts():
        files.append(File.generated(config, f"notebooks/{script.stem}.ipynb", content=to_notebook(script)))
        imported |= set(modules_beside(script))
    for module in sorted(imported):
        files.append(File.generated(config, f"notebooks/{module.name}", content=module.read_text()))
    return files
