"""The contract every example script keeps, as one table: one row per example.

tests/test_example_contract.py checks every row the same way:
- the quick run (`quick_args`) exits 0, ends with a `result:` line and writes every file in
  `writes` into --out, metrics.json with its "run" section;
- a second quick run with the same seed gives the same metrics (except those in `varying`:
  timings and speeds, which measure the machine);
- an explicit option beats --quick (`explicit`: the arguments, then the metrics key and the value
  it must have);
- every bad input (`bad_inputs`: the arguments, and a word the error line must name) gets one
  line on stderr and exit status 2, and leaves an earlier metrics.json in --out untouched;
- an --out that cannot be created is refused the same way.

`{tmp}` in an argument is the test's own folder, made ready by `prepare(tmp)` when a row has one.
The per-example test files check only that example's science; they reuse the quick run through
the `quick_run` fixture (conftest.py), so it runs once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from conftest import REPO


@dataclass(frozen=True)
class Example:
    name: str
    writes: tuple[str, ...]
    explicit: tuple[tuple[str, ...], str, object]
    bad_inputs: dict[str, tuple[tuple[str, ...], str]]
    quick_args: tuple[str, ...] = ("--quick",)
    varying: tuple[str, ...] = ()
    prepare: Callable[[Path], None] | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def script(self) -> Path:
        return REPO / "examples" / f"{self.name}.py"


EXAMPLES = [
    # Each row is kept by the person who changes that example.
]

BY_NAME = {example.name: example for example in EXAMPLES}
