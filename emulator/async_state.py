"""What buffered asynchronous aggregation carries between reports: the server's state,
the launches owed, and one scan through the next reports (`edgetwin.emulator.async_rounds`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from edgetwin.emulator.rounds import RoundRow


@dataclass
class ServerState:
    """What the server carries from one report to the next."""

    version: int = 0
    free_s: float = 0.0  # aggregating until then
    staleness: list[int] = field(default_factory=list)  # of the reports in the buffer
    discarded: int = 0
    window_start_s: float = 0.0
    window_selected: int = 0
    window_energy_j: float = 0.0
    window_up_bytes: float = 0.0
    window_down_bytes: float = 0.0
    taken_energy_j: float = 0.0  # of every report taken, for the stopping rules
    taken_traffic_bytes: float = 0.0
    since_aggregation: int = 0
    owed: list[float] = field(default_factory=list)  # instants owing a launch, in order
    launches: int = 0  # launches made so far: each one's number keys its draws
    stop_reason: str = ""

    def copy(self) -> ServerState:
        """A copy to scan ahead with (its lists copied: a scan changes them in place)."""
        return dataclasses.replace(self, staleness=list(self.staleness), owed=list(self.owed))


@dataclass
class Launch:
    at_s: float
    count: int  # slots to fill
    version: int


@dataclass
class Scan:
    """The server's steps through the next reports: how many it took, at which instants,
    the aggregations they made and the launches they owe."""

    taken: int = 0
    last_s: float = 0.0  # the latest instant it reached
    rows: list[RoundRow] = field(default_factory=list)
    launches: list[Launch] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)  # the reports taken and discarded as stale
