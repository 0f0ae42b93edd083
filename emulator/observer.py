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

from edgetwin.common.arrays import F64, I64

if TYPE_CHECKING:
    from edgetwin.emulator.engine import Engine
    from edgetwin.emulator.rounds import RoundRow
    from edgetwin.emulator.selection.policies import Context, Pool
    from edgetwin.emulator.session import Outcome, Planned



class Observer:
    """Hooks of a run, each a no-op here."""

    selections = False  # told of every selection (the engine skips the work otherwise)

    def selected(self, ctx: Context, pool: Pool, places: I64, rounds: I64,
                 counted: npt.NDArray[np.bool_] | None = None) -> None:
        """A policy chose the clients at `places` of a check-in `pool` of one or more
        launches; asked again with `ctx`, it chooses the same. `rounds[j]` is launch j's
        round (synchronous) or model version (asynchronous); only launches `counted` (all
        where None) were made as chosen (asynchronous launches may be selected again)."""

    def recorded(self, p: Planned, o: Outcome, cut_s: F64, cut_status: int, rnd: I64,
                 status: I64) -> None:
        """Sessions were settled: their rows of client_sessions.csv, in order, cut at
        `cut_s` as `cut_status`, ending as `status` says (the rows' own: `stale` where the
        server discarded a completed report)."""

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
