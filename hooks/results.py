"""MkDocs hook: put numbers that a script wrote into the page that shows the script.

Every example writes `metrics.json` (see examples/workshop.py: `write_metrics`). The full runs
shown on the site keep theirs in docs/results/<example>/. A page never types a result by hand;
it writes a placeholder that this hook fills in from that file:

    {{ metric("digits_cnn", "test_accuracy", ".2%") }}    one value (a dotted path, a format)
    {{ run_summary("digits_cnn") }}                        the command, hardware and time of the run

A placeholder naming a file or a key that does not exist stops the build with an error.
"""

import ast
import json
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

PLACEHOLDER = re.compile(r"\{\{\s*(metric|run_summary)\((.*?)\)\s*\}\}")


def load_results(docs_dir: Path, example: str) -> dict:
    path = docs_dir / "results" / example / "metrics.json"
    if not path.is_file():
        raise PluginError(f"no results for {example!r}: {path} is missing (run `make results NAME={example}` on an idle machine to make it)")
    return json.loads(path.read_text())


def lookup(results: dict, dotted: str, example: str):
    value = results
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise PluginError(f"{example}/metrics.json has no {dotted!r}")
        value = value[key]
    return value


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def metric(results: dict, example: str, dotted: str, fmt: str = "") -> str:
    return format(lookup(results, dotted, example), fmt)


def run_summary(results: dict, example: str) -> str:
    run = lookup(results, "run", example)
    device = run["device"] if run.get("gpu") is None else f"{run['device']} ({run['gpu']})"
    return (
        f"Numbers and figures from this run: `{run['command']}` on {run['cpu']}, "
        f"{run['threads']} thread{'s' if run['threads'] != 1 else ''}, device {device}; "
        f"it took {format_duration(run['wall_time_s'])} (finished {run['finished']})."
    )


def on_page_markdown(markdown: str, page, config, files) -> str:
    docs_dir = Path(config["docs_dir"])
    cache: dict[str, dict] = {}

    def replace(match: re.Match) -> str:
        name, raw_args = match.groups()
        try:
            args = ast.literal_eval(f"({raw_args},)")
        except (SyntaxError, ValueError) as error:
            raise PluginError(f"{page.file.src_uri}: bad placeholder {match.group(0)!r}: {error}") from None
        example = args[0]
        if example not in cache:
            cache[example] = load_results(docs_dir, example)
        if name == "metric":
            return metric(cache[example], *args)
        return run_summary(cache[example], *args)

    return PLACEHOLDER.sub(replace, markdown)
