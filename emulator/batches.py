"""Sessions by the batch: a batch is a dataclass of equal-length columns (sessions as
planned, or as they ended); take some of a batch, or join several into one."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import numpy as np

from edgetwin.common.arrays import I64, B
from edgetwin.emulator.session import Outcome, Planned

Batch = TypeVar("Batch", Planned, Outcome)
# each batch type's columns, named once
_NAMES = {kind: tuple(f.name for f in dataclasses.fields(kind)) for kind in (Planned, Outcome)}


def take(batch: Batch, i: I64 | B) -> Batch:
    """Sessions `i` of a batch, as a batch."""
    if i.dtype == bool:  # a mask's places found once, not once a column
        i = np.flatnonzero(i)
    return type(batch)(**{name: getattr(batch, name)[i] for name in _NAMES[type(batch)]})


def join(batches: list[Batch]) -> Batch:
    """Batches as one, in order."""
    return type(batches[0])(**{name: np.concatenate([getattr(b, name) for b in batches])
                               for name in _NAMES[type(batches[0])]})
