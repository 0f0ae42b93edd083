"""The sessions of an emulated run as replay needs them: each row of
client_sessions.csv with its uninterrupted plan, the cut that ended it and the
group's predicted costs, recorded while the run is simulated again."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emulator.costs import GroupCost
from emulator.engine import Results
from emulator.observer import F64, I64, Observer
from emulator.session import CANCELLED, COMPLETED, DEADLINE, STATUSES, Outcome, Planned

# a session is near the deadline when 25 % more or less compute time would move its end
# across the moment its round stopped waiting: where the emulator's decisions flip
NEAR_FRACTION = 0.25


@dataclass(frozen=True)
class RunSession:
    row: int  # its row in client_sessions.csv (0-based)
    client: int
    group: int
    round: int
    planned: Planned  # the batch it was planned in
    index: int  # its place in that batch
    cut_s: float  # when its round stopped waiting for it
    cut_status: int  # what a cut at cut_s makes of it (deadline or cancelled)
    status: int  # how it ended in the run
    cost: GroupCost
    local_steps: int  # the steps it was planned to run

    @property
    def outcome(self) -> str:
        return STATUSES[self.status]

    @property
    def margin_s(self) -> float:
        """How long before (> 0) or after (< 0) the cut its uninterrupted plan ended."""
        return float(self.cut_s - self.planned.upload_end_s[self.index])

    @property
    def near_deadline(self) -> bool:
        p, i = self.planned, self.index
        compute = float(p.compute_end_s[i] - p.download_end_s[i])
        if self.status not in (COMPLETED, DEADLINE, CANCELLED) or compute <= 0:
            return False
        return abs(self.margin_s) <= NEAR_FRACTION * compute


class SessionRecorder(Observer):
    """Keeps each settled session's plan and cut, in the order rows are written."""

    def __init__(self) -> None:
        self.parts: list[tuple[Planned, Outcome, F64, int, I64]] = []

    def recorded(self, p: Planned, o: Outcome, cut_s: F64, cut_status: int, rnd: I64) -> None:
        self.parts.append((p, o, np.asarray(cut_s, dtype=np.float64), cut_status, rnd))

    def sessions(self, results: Results) -> list[RunSession]:
        f = results.fleet
        out: list[RunSession] = []
        for p, o, cut_s, cut_status, rnd in self.parts:
            for i in range(len(p.client)):
                c = int(p.client[i])
                out.append(RunSession(
                    row=len(out), client=c, group=int(f.group[c]), round=int(rnd[i]),
                    planned=p, index=i, cut_s=float(cut_s[i]), cut_status=cut_status,
                    status=int(o.status[i]), cost=f.costs[int(f.cost_index[c])],
                    local_steps=int(f.local_steps[c])))
        return out
