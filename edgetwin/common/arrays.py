"""The array types every layer writes its columns in: numpy arrays of float64, int64 and
bool (a session, a client, an op per entry)."""

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
