"""Fixed-point CSV, written a column at a time: numbers with a fixed count of decimals
and labels, laid out as bytes with numpy, for the million-row files a large fleet
writes (Python's per-value formatting would take longer than the simulation).

Numbers round as `'%.{d}f' % x` does: to the nearest, ties to even on the exact binary
value; the few whose scaled value lies within rounding error of a tie are formatted by
Python itself. Infinities are written `inf` and `-inf`, as Python and pandas read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin.common.arrays import I64

MAX_DIGITS = 19
POWERS_OF_TEN = 10 ** np.arange(1, MAX_DIGITS, dtype=np.int64)  # 10 .. 10**18
CHUNK_ROWS = 1 << 16  # rows laid out at once by `write`


@dataclass(frozen=True)
class Column:
    """Numbers (`labels` None) with `decimals` places, or indices into `labels`."""

    values: npt.NDArray[Any]
    decimals: int = 0
    labels: Sequence[str] | None = None


def scaled(x: npt.NDArray[Any], decimals: int) -> I64:
    """round(x * 10**decimals) as '%.{decimals}f' rounds x."""
    x = np.asarray(x, dtype=np.float64)
    y = x * 10.0 ** decimals
    q = np.rint(y).astype(np.int64)
    # y is x * 10**decimals rounded once (10**decimals is exact): off by at most half a
    # unit in its last place, 1.1e-16 of it; nearer a tie than 1e-15 of it, Python decides
    near = np.abs(np.abs(y - np.trunc(y)) - 0.5) < 1e-15 * np.maximum(1.0, np.abs(y))
    for i in np.flatnonzero(near):  # within rounding error of a tie: Python decides
        q[i] = int(f"{x[i]:.{decimals}f}".replace(".", ""))
    return q


def encode(header: Sequence[str], columns: Sequence[Column]) -> bytes:
    """The CSV text of `columns` under `header`, one row per entry."""
    return _head(header) + _rows(columns)


def write(path: Path, header: Sequence[str], columns: Sequence[Column]) -> None:
    """`encode`'s bytes into `path`, CHUNK_ROWS rows at a time: rows are laid out each
    on its own, so the file is the same and the memory that of one chunk."""
    n = len(columns[0].values) if columns else 0
    with path.open("wb") as fh:
        fh.write(_head(header))
        for first in range(0, n, CHUNK_ROWS):
            fh.write(_rows([dataclasses.replace(c, values=np.asarray(c.values)[
                first: first + CHUNK_ROWS]) for c in columns]))


def _head(header: Sequence[str]) -> bytes:
    return (",".join(header) + "\n").encode()


def _rows(columns: Sequence[Column]) -> bytes:
    """The rows of `columns`, each ended by a newline."""
    n = len(columns[0].values) if columns else 0
    if n == 0:
        return b""
    fields: list[tuple[str, Any, I64]] = []  # kind, data, field length
    for col in columns:
        if col.labels is not None:
            table = [s.encode() for s in col.labels]
            idx = np.asarray(col.values, dtype=np.int64)
            fields.append(("label", (table, idx), np.array([len(s) for s in table])[idx]))
            continue
        values = np.asarray(col.values)
        infinite = np.isinf(values) if values.dtype.kind == "f" else np.zeros(n, dtype=bool)
        finite = np.where(infinite, 0, values)
        v = scaled(finite, col.decimals) if col.decimals else finite.astype(np.int64)
        # as Python writes it: a negative number that rounds to zero keeps its sign
        neg = np.signbit(finite) if col.decimals and finite.dtype.kind == "f" else v < 0
        mag = np.abs(v)
        digits = 1 + np.searchsorted(POWERS_OF_TEN, mag, side="right")
        digits = np.maximum(digits, col.decimals + 1)
        length = np.where(infinite, 3 + (values < 0), digits + (col.decimals > 0) + neg)
        fields.append(("number", (mag, neg, col.decimals, digits, infinite, values < 0),
                       length))
    row_len: I64 = np.sum([f[2] for f in fields], axis=0) + len(fields)  # commas, newline
    row_start = np.concatenate(([0], np.cumsum(row_len)[:-1]))
    size = int(row_len.sum())
    out = np.full(size + 1, ord(","), dtype=np.uint8)  # the last byte takes stray digits
    out[row_start + row_len - 1] = ord("\n")
    at = row_start.copy()
    for kind, data, length in fields:
        if kind == "label":
            table, idx = data
            for i, s in enumerate(table):
                rows = np.flatnonzero(idx == i)
                for j, byte in enumerate(s):
                    out[at[rows] + j] = byte
        else:
            mag, neg, decimals, digits, infinite, below = data
            real = ~infinite
            out[at[neg & real]] = ord("-")
            end = at + length - 1  # the last digit
            rest = mag.copy()
            always = int(digits.min()) if real.all() else 0
            for p in range(int(digits.max())):
                pos = end - p - (1 if decimals and p >= decimals else 0)
                if p >= always:  # a shorter number (or an infinity) has no digit here
                    pos = np.where(real & (p < digits), pos, size)
                rest, digit = np.divmod(rest, 10)
                out[pos] = digit + ord("0")
            if decimals:
                out[np.where(real, end - decimals, size)] = ord(".")
            for rows, text in ((np.flatnonzero(infinite & ~below), b"inf"),
                               (np.flatnonzero(infinite & below), b"-inf")):
                for j, byte in enumerate(text):
                    out[at[rows] + j] = byte
        at += length + 1
    return out[:size].tobytes()
