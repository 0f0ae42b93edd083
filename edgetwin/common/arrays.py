"""The array types every layer writes its columns in: numpy arrays of float64, int64 and
bool (a session, a client, an op per entry); and the few helpers on them that every layer
uses (places, runs of equal values, client ids sorted and distinct)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


def at_places(values: F64, i: I64) -> F64:
    """Per-item values (instants, say) at places `i`; one value for all (0-d) stays one."""
    return values if values.ndim == 0 else values[i]


def run_starts(ordered: I64) -> B:
    """Where each run of equal values of a sorted array begins (the first of each)."""
    starts = np.empty(len(ordered), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    return starts


RADIX_FROM = 1024  # ids: below this many, one comparison sort costs less than two passes


def sort_ids(ids: I64, below: int) -> I64:
    """Non-negative integers below `below` (client ids), sorted: where they fit in 32
    bits, by two stable passes over 16-bit digits (numpy's radix sort for 16-bit keys),
    about twice as fast as a comparison sort of 64-bit integers; the same array."""
    if below > 1 << 32 or len(ids) < RADIX_FROM:
        return np.sort(ids)
    low = ids[np.argsort(ids.astype(np.uint16), kind="stable")]  # the low digit: wraps
    if below <= 1 << 16:
        return low
    out: I64 = low[np.argsort((low >> 16).astype(np.uint16), kind="stable")]
    return out


def distinct_ids(ids: I64, below: int) -> I64:
    """The distinct ids (non-negative, below `below`), sorted: `np.unique`'s result, by
    `sort_ids` (numpy's `unique` hashes, several times slower for some thousand ids)."""
    ordered = sort_ids(ids, below)
    out: I64 = ordered[run_starts(ordered)]
    return out
