"""Reading the small data files edgetwin writes and takes (summary.json, the CSV files of
a run or a sweep, traces, trainer logs), with one error path: a file that cannot be
read, is not JSON, lacks a column or has a row of another length is an `InputError`
naming the file, the line or column, and what is wrong."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin.common.errors import InputError

Table = dict[str, npt.NDArray[Any]]  # a CSV file, column by column


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise InputError(str(path), "", f"cannot read ({err.strerror})") from None


def read_json(path: Path) -> Any:
    """A JSON file's value."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(str(path), f"line {err.lineno}", f"not JSON ({err.msg})") from None


def read_json_object(path: Path, keys: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON file holding an object, with at least `keys`."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(str(path), "", "expected a JSON object")
    for key in keys:
        if key not in data:
            raise InputError(str(path), key, "missing (the file is cut short or not edgetwin's)")
    return data


def read_csv(path: Path, columns: Sequence[str] = ()) -> list[dict[str, str]]:
    """A CSV file's rows, by column name; `columns` must be in its header, and every row
    as long as the header (a file cut short ends in a shorter row)."""
    header, rows = _rows(path, columns)
    return [dict(zip(header, row, strict=True)) for row in rows]


def read_table(path: Path, columns: Sequence[str] = ()) -> Table:
    """A CSV file as columns: whole numbers as int64, other numbers (and inf) as float64,
    anything else as str."""
    header, rows = _rows(path, columns)
    values = list(zip(*rows, strict=True)) or [() for _ in header]
    return {name: _column(v) for name, v in zip(header, values, strict=True)}


def looks_whole(path: Path) -> bool:
    """A file written by edgetwin is there and ends where a line ends (one cut short while
    it was copied or truncated since does not), without reading it all."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            if fh.tell() == 0:
                return False
            fh.seek(-1, 2)
            return fh.read(1) == b"\n"
    except OSError:
        return False


def _rows(path: Path, columns: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(read_text(path).splitlines()))
    if not rows or not rows[0]:
        raise InputError(str(path), "", "empty: no header")
    header = rows[0]
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputError(str(path), "header", f"no column {missing[0]!r} (it has "
                         f"{', '.join(header)})")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(str(path), f"line {number}", f"{len(row)} fields, the header has "
                             f"{len(header)} (the file is cut short or damaged)")
    return header, rows[1:]


def _column(values: tuple[str, ...]) -> npt.NDArray[Any]:
    for dtype in (np.int64, np.float64):
        try:
            return np.array(values, dtype=dtype)
        except ValueError:
            continue
    return np.array(values, dtype=str)
