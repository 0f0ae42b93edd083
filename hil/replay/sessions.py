"""The sessions of an emulated run as replay needs them: each row of
client_sessions.csv with its uninterrupted plan (and the batch it was planned in: a
synchronous round), the cut that ended it, its margin and completion probability,
and the group's predicted costs, recorded while the run is simulated again."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.costs import GroupCost
from edgetwin.emulator.engine import Results
from edgetwin.emulator.observer import Observer
from edgetwin.emulator.session import STATUSES, Outcome, Planned

# a session is timing-sensitive when its compute time taking 25 % longer, or 1/1.25 of
# it, would change its outcome: where the emulator's decisions can flip
SENSITIVE_FACTOR = 1.25


@dataclass(frozen=True)
class Batch:
    """Sessions recorded together: a synchronous round's (or the sessions the stop cut),
    or some of buffered asynchronous aggregation's."""

    planned: Planned
    cut_s: F64  # when the round stopped waiting for each
    cut_status: int
    round: I64
    status: I64  # as client_sessions.csv says
    first_row: int


@dataclass(frozen=True)
class RunSession:
    row: int  # its row in client_sessions.csv (0-based)
    client: int
    group: int
    round: int
    batch: Batch
    index: int  # its place in the batch
    status: int  # how it ended in the run (client_sessions.csv's)
    cost: GroupCost
    local_steps: int  # the steps it was planned to run
    timing_margin: float
    p_complete: float

    @property
    def planned(self) -> Planned:
        return self.batch.planned

    @property
    def cut_s(self) -> float:
        return float(self.batch.cut_s[self.index])

    @property
    def outcome(self) -> str:
        return STATUSES[self.status]

    @property
    def compute_factor(self) -> float:
        """The run's draw of its profile's session variability."""
        return float(self.planned.compute_factor[self.index])

    @property
    def sensitive(self) -> bool:
        m = self.timing_margin
        return 1 / SENSITIVE_FACTOR <= m <= SENSITIVE_FACTOR

    @property
    def margin_class(self) -> str:
        """`sensitive` (within a factor 1.25), `robust` (changes further out) or `fixed`
        (no compute time changes it: out of memory, out of battery, offline before)."""
        if self.sensitive:
            return "sensitive"
        return "fixed" if not np.isfinite(self.timing_margin) else "robust"


class SessionRecorder(Observer):
    """Keeps each settled batch's plan and cut, in the order rows are written."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.rows = 0

    def recorded(self, p: Planned, o: Outcome, cut_s: F64, cut_status: int, rnd: I64,
                 status: I64) -> None:
        self.batches.append(Batch(p, np.asarray(cut_s, dtype=np.float64), cut_status,
                                  np.asarray(rnd, dtype=np.int64),
                                  np.asarray(status, dtype=np.int64), self.rows))
        self.rows += len(p.client)

    def sessions(self, results: Results) -> list[RunSession]:
        f = results.fleet
        margin = results.sessions["timing_margin"] if results.sessions else np.zeros(0)
        p_complete = results.sessions["p_complete"] if results.sessions else np.zeros(0)
        out: list[RunSession] = []
        for b in self.batches:
            for i in range(len(b.planned.client)):
                c = int(b.planned.client[i])
                row = len(out)
                out.append(RunSession(
                    row=row, client=c, group=int(f.group[c]), round=int(b.round[i]),
                    batch=b, index=i, status=int(b.status[i]),
                    cost=f.costs[int(f.cost_index[c])], local_steps=int(f.local_steps[c]),
                    timing_margin=float(margin[row]), p_complete=float(p_complete[row])))
        return out
