"""Sessions by the batch: a batch is a dataclass of equal-length columns (sessions as
planned, or as they ended); take some of a batch, or join several into one."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import numpy as np

from edgetwin.common.arrays import I64, B
from edgetwin.emulator.session import Outcome, Planned

Batch = TypeVar("Batch", Planned, Outcome)


def take(batch: Batch, i: I64 | B) -> Batch:
    """Sessions `i` of a batch, as a batch."""
    return type(batch)(**{f.name: getattr(batch, f.name)[i]
                          for f in dataclasses.fields(batch)})


def join(batches: list[Batch]) -> Batch:
    """Batches as one, in order."""
    return type(batches[0])(**{f.name: np.concatenate([getattr(b, f.name) for b in batches])
                               for f in dataclasses.fields(batches[0])})
