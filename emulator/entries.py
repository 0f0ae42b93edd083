"""Dataclasses of equal-length arrays, one entry per session or client (a batch of
sessions as planned or as they ended, their chargers, their thermal parameters): some
entries of one, or several joined, as one of the same kind. One way to do both, for
every such kind, so that a field added to one is carried along by itself."""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any, TypeVar

import numpy as np

from edgetwin.common.arrays import I64, B

Entries = TypeVar("Entries")  # a dataclass instance whose fields are equal-length arrays


@cache  # each kind's fields, named once: take and join are on hot paths
def _names(kind: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


def take(entries: Entries, i: I64 | B) -> Entries:
    """Entries `i` (places, or a mask) of every field, as one of the same kind."""
    if i.dtype == bool:  # a mask's places found once, not once a field
        i = np.flatnonzero(i)
    kind: Any = type(entries)  # (its fields in order, as its constructor takes them)
    out: Entries = kind(*[getattr(entries, name)[i] for name in _names(kind)])
    return out


def join(parts: list[Entries]) -> Entries:
    """Several as one, their entries in order."""
    kind: Any = type(parts[0])
    out: Entries = kind(*[np.concatenate([getattr(p, name) for p in parts])
                          for name in _names(kind)])
    return out
