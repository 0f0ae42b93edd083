"""Fixed-point CSV, written a column at a time: numbers with a fixed count of decimals
and labels, laid out as bytes with numpy, for the million-row files a large fleet
writes (Python's per-value formatting would take longer than the simulation).

Numbers round as `'%.{d}f' % x` does: to the nearest, ties to even on the exact binary
value; the few whose scaled value lies within rounding error of a tie are formatted by
Python itself. Infinities are written `inf` and `-inf`, as Python and pandas read them.
A large file's chunks are laid out on two threads where there are two cores (numpy
leaves the interpreter's lock in its loops) and written in order: the same bytes.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin.common.arrays import I64

MAX_DIGITS = 19
POWERS_OF_TEN = 10 ** np.arange(1, MAX_DIGITS, dtype=np.int64)  # 10 .. 10**18
CHUNK_ROWS = 1 << 15  # rows laid out at once by `write`, on each worker


def _workers() -> int:
    """Chunks laid out at once, each on a thread of its own: two where the process may
    use two cores or more, and OMP_NUM_THREADS (a process's thread count, where a pool
    of processes is the parallelism) does not say one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1
    told = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(2, cores, int(told) if told.isdigit() else 2))


WORKERS = _workers()


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
    on its own, so the file is the same, and the memory that of a chunk per worker and
    one laid out waiting to be written."""
    n = len(columns[0].values) if columns else 0
    firsts = range(0, n, CHUNK_ROWS)
    with path.open("wb") as fh:
        fh.write(_head(header))
        if WORKERS < 2 or len(firsts) < 2:
            for first in firsts:
                fh.write(_chunk(columns, first))
            return
        pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="edgetwin-csv")
        pending: deque[Future[bytes]] = deque()
        try:
            for first in firsts:
                pending.append(pool.submit(_chunk, columns, first))
                if len(pending) > WORKERS:  # one chunk waiting beyond those being laid out
                    fh.write(pending.popleft().result())
            while pending:
                fh.write(pending.popleft().result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _chunk(columns: Sequence[Column], first: int) -> bytes:
    """The rows from `first`, CHUNK_ROWS of them at most."""
    return _rows([dataclasses.replace(c, values=np.asarray(c.values)[first: first + CHUNK_ROWS])
                  for c in columns])


def _head(header: Sequence[str]) -> bytes:
    return (",".join(header) + "\n").encode()


def _rows(columns: Sequence[Column]) -> bytes:
    """The rows of `columns`, each ended by a newline: laid out in a byte matrix, a slot
    a column as wide as its widest field, each field at the right of its slot and the
    rest NUL; the NULs dropped, row by row, give the text. Every byte is written a
    column of the matrix at a time (a digit place is one place in every row)."""
    n = len(columns[0].values) if columns else 0
    if n == 0:
        return b""
    fields = [_label(col) if col.labels is not None else _number(col) for col in columns]
    widths = [f.width for f in fields]
    ends = np.cumsum(np.array(widths) + 1) - 1  # each slot's separator
    out = np.zeros((n, int(ends[-1]) + 1), dtype=np.uint8)
    out[:, ends[:-1]] = ord(",")
    out[:, ends[-1]] = ord("\n")
    for f, end, width in zip(fields, ends.tolist(), widths, strict=True):
        f.lay_out(out, end, width)
    laid: npt.NDArray[np.uint8] = out[out != 0]
    return laid.tobytes()


@dataclass(frozen=True)
class _Label:
    codes: I64
    table: npt.NDArray[np.uint8]  # each label at the right of a row as wide as the widest
    width: int  # the widest label written

    def lay_out(self, out: npt.NDArray[np.uint8], end: int, width: int) -> None:
        """Into the slot of `width` bytes before `end` (as wide as the widest here)."""
        out[:, end - width:end] = self.table[:, self.table.shape[1] - width:][self.codes]


def _label(col: Column) -> _Label:
    assert col.labels is not None
    encoded = [s.encode() for s in col.labels]
    if any(b"\0" in s for s in encoded):
        raise ValueError("a label holds a NUL byte")
    width = max([len(s) for s in encoded] + [1])
    table = np.zeros((len(encoded), width), dtype=np.uint8)
    for i, s in enumerate(encoded):
        table[i, width - len(s):] = np.frombuffer(s, dtype=np.uint8)
    codes = np.asarray(col.values, dtype=np.int64)
    used = np.flatnonzero(np.bincount(codes, minlength=len(encoded)))
    return _Label(codes, table, max([len(encoded[i]) for i in used] + [0]))


@dataclass(frozen=True)
class _Number:
    mag: I64  # the scaled magnitude, its digits written
    neg: npt.NDArray[np.bool_]
    decimals: int
    infinite: npt.NDArray[np.bool_]
    below: npt.NDArray[np.bool_]  # negative (for an infinity: -inf)
    places: int  # digit places: the largest magnitude's, at least one before the point
    width: int  # the widest field: places, point, sign; or -inf

    def lay_out(self, out: npt.NDArray[np.uint8], end: int, width: int) -> None:
        """Into the slot of `width` bytes before `end`, at its right: digits from the
        last, each place of every row at once; a zero before a number's first digit
        (and every digit of an infinity) left NUL."""
        real = ~self.infinite
        # below 2**49, floor(x / 10) in float64 is the whole quotient: faster than divmod
        rest = self.mag.astype(np.float64) if self.places <= 14 else self.mag.copy()
        for p in range(self.places):
            place = end - 1 - p - (1 if self.decimals and p >= self.decimals else 0)
            quotient = np.floor(rest / 10) if rest.dtype.kind == "f" else rest // 10
            byte = (rest - 10 * quotient).astype(np.uint8) + np.uint8(ord("0"))
            if p > self.decimals:  # a leading zero is no digit
                byte[rest == 0] = 0
            out[:, place] = byte
            rest = quotient
        if not real.all():
            out[self.infinite, end - self.places - (self.decimals > 0):end] = 0
        if self.decimals:
            out[real, end - 1 - self.decimals] = ord(".")
        rows = np.flatnonzero(self.neg & real)
        digits = 1 + np.searchsorted(POWERS_OF_TEN, self.mag[rows], side="right")
        first = end - np.maximum(digits, self.decimals + 1) - (self.decimals > 0)
        out[rows, first - 1] = ord("-")
        for which, text in ((self.infinite & ~self.below, b"inf"),
                            (self.infinite & self.below, b"-inf")):
            rows = np.flatnonzero(which)
            for j, code in enumerate(text):
                out[rows, end - len(text) + j] = code


def _number(col: Column) -> _Number:
    values = np.asarray(col.values)
    n = len(values)
    infinite = np.isinf(values) if values.dtype.kind == "f" else np.zeros(n, dtype=bool)
    finite = np.where(infinite, 0, values) if infinite.any() else values
    real = finite.dtype.kind == "f"  # rounded as Python rounds it, whole numbers too
    v = scaled(finite, col.decimals) if real else finite.astype(np.int64)
    # as Python writes it: a negative number that rounds to zero keeps its sign
    neg = np.signbit(finite) if real else v < 0
    mag = np.abs(v)
    places = max(len(str(int(mag.max()))), col.decimals + 1)
    width = places + (col.decimals > 0) + int(neg.any())
    return _Number(mag, neg, col.decimals, infinite, values < 0, places,
                   max(width, 3 + int((infinite & (values < 0)).any()) if infinite.any() else 0))
