"""The row type every benchmark section returns, and the printed table."""

from dataclasses import dataclass


@dataclass
class Row:
    section: str
    what: str
    value: str
    target: str = ""
    met: bool | None = None  # None: no target


def print_table(rows: list[Row]) -> None:
    header = ("section", "what", "measured", "target", "met")
    lines = [(r.section, r.what, r.value, r.target, {True: "yes", False: "NO", None: ""}[r.met]) for r in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines)]
    for cells in [header, tuple("-" * w for w in widths), *lines]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip())
