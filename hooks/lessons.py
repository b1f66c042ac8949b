"""MkDocs hook: show an example script on its page as the lesson it is, cell by cell.

An example script is written in jupytext "percent" cells (`# %%` for code, `# %% [markdown]` for
prose), as the scikit-learn gallery writes its examples. A page asks for one with

    {{ lesson("examples/digits_cnn.py") }}

and gets, in the script's order, each markdown cell as prose and each code cell as a Python
block. The module docstring is left out: the page's own introduction says it. The script stays
the one source: the page is made from it at every build.
"""

import ast
import json
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from notebooks import to_notebook

PLACEHOLDER = re.compile(r"\{\{\s*lesson\(\s*\"([^\"]+)\"\s*\)\s*\}\}")


def without_docstring(source: str) -> str:
    """The cell's code less a leading module docstring."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(getattr(tree.body[0], "value", None), ast.Constant):
        return "\n".join(source.splitlines()[tree.body[0].end_lineno :]).strip("\n")
    return source


def lesson_markdown(script: Path) -> str:
    cells = json.loads(to_notebook(script))["cells"]  # the notebook the notebooks hook offers
    parts = []
    for index, cell in enumerate(cells):
        source = "".join(cell["source"]).strip("\n")
        if cell["cell_type"] == "code" and index == 0:
            source = without_docstring(source)
        if not source.strip():
            continue
        parts.append(source if cell["cell_type"] == "markdown" else f'```python\n{source}\n```')
    return "\n\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = Path(config["config_file_path"]).parent

    def replace(match: re.Match) -> str:
        script = root / match.group(1)
        if not script.is_file():
            raise PluginError(f"{page.file.src_uri}: lesson script {match.group(1)} does not exist")
        if "\n# %%" not in script.read_text():
            raise PluginError(f"{page.file.src_uri}: {match.group(1)} has no `# %%` cells to show as a lesson")
        return lesson_markdown(script)

    return PLACEHOLDER.sub(replace, markdown)
