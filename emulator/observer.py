"""Watching a run from outside: what the engine tells an observer as it goes.

Replay and periodic validation (in `hil`) need what the run folder does not keep:
each session's uninterrupted plan and the cut that ended it, and each selection's
check-in pool and context (its draws keyed, so that the policy asked again with
other costs draws the same). The engine calls these hooks; the default observer does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from emulator.engine import Engine, RoundRow
    from emulator.selection.policies import Context, Pool
    from emulator.session import Outcome, Planned

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class Observer:
    """Hooks of a run, each a no-op here."""

    def selected(self, ctx: Context, pool: Pool, chosen: I64, rnd: int) -> None:
        """A policy chose `chosen` from synchronous round `rnd`'s check-in `pool`; asked
        again with `ctx`, it chooses the same."""

    def recorded(self, p: Planned, o: Outcome, cut_s: F64, cut_status: int, rnd: I64) -> None:
        """Sessions were settled: their rows of client_sessions.csv, in order."""

    def round_closed(self, engine: Engine, row: RoundRow, p: Planned, o: Outcome, cut_s: F64,
                     cut_status: int) -> None:
        """A synchronous round closed (before the next is planned); its sessions were
        cut at `cut_s` as `cut_status`."""

    def finish(self, out: Path) -> dict[str, Any]:
        """The run is over and its folder is `out`: write what the observer keeps; what it
        returns is recorded in scenario.resolved.yaml."""
        return {}

    def close(self) -> None:
        """Release what the observer holds (links to devices), after the run or on an error."""
