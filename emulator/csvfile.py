"""Reading the small numeric CSV files a scenario names (availability and bandwidth
traces): the header checked, every row parsed, and a bad one named by its line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from edgetwin.common.errors import InputError
from edgetwin.common.files import read_csv

Row = tuple[float, ...]


def read_rows(path: Path, columns: Sequence[str], check: Callable[[Row], str | None],
              types: str = "") -> list[Row]:
    """The rows of `path` as numbers, in `columns` order. `types` has one letter per
    column, `i` for an integer (default: all numbers); `check` returns what is wrong
    with a row, or None."""
    rows: list[Row] = []
    kinds = types or "f" * len(columns)
    for line, raw in enumerate(read_csv(path, columns), start=2):
        values = []
        for c, kind in zip(columns, kinds, strict=True):
            try:
                values.append(int(raw[c]) if kind == "i" else float(raw[c]))
            except (TypeError, ValueError):
                need = "a whole number" if kind == "i" else "a number"
                raise InputError(str(path), f"line {line}", f"{c}: expected {need}, "
                                 f"got {raw[c]!r}") from None
        row = tuple(values)
        problem = check(row)
        if problem:
            raise InputError(str(path), f"line {line}", problem)
        rows.append(row)
    if not rows:
        raise InputError(str(path), "", "no rows")
    return rows
