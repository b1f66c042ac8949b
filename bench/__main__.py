"""The benchmark: `make bench` (or `.venv/bin/python -m bench [SECTION ...]`) prints one table.

Every module bench/<section>.py provides `rows() -> list[Row]`; this runs them in order and
prints what each measured next to its target. Speed and accuracy targets live here, never in
timed tests (those flake on a busy machine). It only measures and prints: every run happens in a
scratch copy of the repository, and nothing is written under docs/ (`make results` rewrites the
results the site shows, tools/results.py).
"""

import importlib
import pkgutil
import sys
from pathlib import Path

from bench.table import print_table

SECTIONS_FIRST = ["site"]  # cheap sections first; the rest alphabetically


def main() -> None:
    available = sorted(
        (m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name != "table" and not m.name.startswith("_")),
        key=lambda name: (name not in SECTIONS_FIRST, name),
    )
    wanted = sys.argv[1:] or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        sys.exit(f"bench: unknown section(s) {', '.join(unknown)}; choose from {', '.join(available)}")
    rows = []
    for name in wanted:
        print(f"bench: running {name} ...", flush=True)
        rows += importlib.import_module(f"bench.{name}").rows()
    print_table(rows)


if __name__ == "__main__":
    main()
