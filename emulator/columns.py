"""Per-client columns that cost nothing for a client never asked.

A client's drawn attributes are pure functions of its id (keyed draws), so a column
is a function: `Computed` works values out for the clients asked. A fleet small enough
holds them whole instead (a gather is cheaper than working a value out again); the
values are the same either way. What a run writes of a client (its charge, its
temperature, when its session ends) is `Kept`: held only for the clients written,
every other client reading its default (a constant one needs no more than the value
held: it is what a place not yet written holds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edgetwin.common.arrays import I64, distinct_ids

# fleets up to this many clients hold their columns whole (larger ones too where each
# of their clients will be asked several times: fleet.holds_whole)
EAGER_CLIENTS = 250_000

Values = npt.NDArray[Any]
Of = Callable[[I64], Values]


class Column(Protocol):
    """Per-client values read by client ids."""

    def __getitem__(self, c: Any, /) -> Any: ...

    def __len__(self) -> int: ...


class StateColumn(Column, Protocol):
    """Per-client values a run writes."""

    def __setitem__(self, c: Any, value: Any, /) -> None: ...


class Computed:
    """A read-only column worked out for the clients asked: `of(clients)`."""

    def __init__(self, n: int, of: Of) -> None:
        self.n, self.of = n, of

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, c: Any) -> Any:
        if type(c) is np.ndarray and c.dtype == np.int64 and c.ndim == 1:  # the usual read
            return self.of(c)
        c = np.asarray(c)
        if c.dtype == bool:
            raise TypeError("a computed column is read by client ids, not by a mask")
        if c.ndim == 0:  # one client: its value, as an array element reads
            return self.of(c.astype(np.int64).reshape(1))[0]
        return self.of(c.astype(np.int64, copy=False))


def column(n: int, of: Of, whole: bool) -> Column:
    """The column of `of` over `n` clients: held whole, or worked out when asked."""
    return of(np.arange(n, dtype=np.int64)) if whole else Computed(n, of)


class Kept:
    """Values a run writes, for the clients it wrote, over several columns: a slot map
    over the fleet (zeroed memory: the system commits its pages only where written)
    into compact arrays that grow with the clients written. A place holds a column's
    value once that column is written there; until then the client reads its default,
    worked out when read (a client placed by one column's write costs the others
    nothing)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.slot: npt.NDArray[np.integer[Any]] = np.zeros(
            n, dtype=np.int32 if n < 2 ** 31 - 1 else np.int64)
        self.columns: list[KeptColumn] = []
        self.size = 0

    def add(self, default: Of | float, dtype: npt.DTypeLike = np.float64) -> KeptColumn:
        col = KeptColumn(self, default, np.dtype(dtype))
        self.columns.append(col)
        return col

    def slots(self, c: I64) -> npt.NDArray[np.integer[Any]]:
        """Each client's place in the compact arrays (0: none; their first entry belongs
        to no client and is never written, so that every client reads some entry)."""
        return self.slot[c]

    def place(self, c: I64) -> npt.NDArray[np.integer[Any]]:
        """Places for clients `c`, given now to those without one (nothing written there
        yet: each column's default stands until it is)."""
        s = self.slots(c)
        new = s == 0
        if new.any():
            fresh = distinct_ids(c[new], self.n)
            self.slot[fresh] = np.arange(self.size + 1, self.size + 1 + len(fresh))
            self.size += len(fresh)
            for col in self.columns:
                col.reserve(self.size + 1)
            s = self.slots(c)
        return s

    def write(self, c: I64, values: dict[KeptColumn, Values]) -> None:
        """Write several columns of clients `c` at once: the clients placed once."""
        at = self.place(c)
        for col, value in values.items():
            col.put(at, value)


class KeptColumn:
    """One column of a `Kept` state: its default for a client not yet written (worked out
    per client, or one number for all)."""

    def __init__(self, kept: Kept, default: Of | float, dtype: np.dtype[Any]) -> None:
        self.kept = kept
        # a number: held by every place until written there, so no place need say which
        self.default: Of | None = default if callable(default) else None
        self.fill: float = 0 if callable(default) else default
        self.values = np.full(16, self.fill, dtype=dtype)
        # per place: this column written there (a constant default needs no such flags)
        self.written = np.zeros(16, dtype=bool) if self.default is not None else None

    def __len__(self) -> int:
        return self.kept.n

    def reserve(self, end: int) -> None:
        """Room for the places up to `end` (twice as much again where it grows)."""
        if end > len(self.values):
            size = max(end, 2 * len(self.values))
            self.values = _grown(self.values, size, self.fill)
            if self.written is not None:
                self.written = _grown(self.written, size, False)

    def put(self, at: npt.NDArray[np.integer[Any]], value: Any) -> None:
        """Write `value` at places `at` (given by `Kept.place`)."""
        self.values[at] = value
        if self.written is not None:
            self.written[at] = True

    def __getitem__(self, c: Any) -> Any:
        c = np.asarray(c, dtype=np.int64)
        if c.ndim == 0:  # one client: its value, as an array element reads
            return self[c.reshape(1)][0]
        s = self.kept.slots(c)
        out = self.values[s]
        if self.written is None:  # a constant default: held there
            return out
        unwritten = np.flatnonzero(~self.written[s])
        if len(unwritten):
            assert self.default is not None  # (flags are kept for a default per client)
            out[unwritten] = self.default(c[unwritten])
        return out

    def __setitem__(self, c: Any, value: Any) -> None:
        self.put(self.kept.place(np.asarray(c, dtype=np.int64)), value)


def _grown(a: Values, size: int, fill: Any) -> Values:
    """`a` in an array of `size` entries, the rest `fill`."""
    out = np.full(size, fill, dtype=a.dtype)
    out[: len(a)] = a
    return out


def state(n: int, default: Of | float, kept: Kept | None,
          dtype: npt.DTypeLike = np.float64) -> StateColumn:
    """A column a run writes, each client's value until then `default` (worked out per
    client, or one number for all): a whole array, or `kept` for the clients written."""
    if kept is None:
        if callable(default):
            whole: StateColumn = np.asarray(default(np.arange(n, dtype=np.int64)), dtype=dtype)
        else:  # zeros as the system hands them out: a page is committed where written
            whole = np.zeros(n, dtype=dtype) if default == 0 else np.full(n, default, dtype=dtype)
        return whole
    return kept.add(default, dtype)
