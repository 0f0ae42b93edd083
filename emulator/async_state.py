"""What buffered asynchronous aggregation carries between reports: the server's state,
the launches owed, and one scan through the next reports (`edgetwin.emulator.async_rounds`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from edgetwin.emulator.config import AsyncConfig, StopConfig
from edgetwin.emulator.rounds import RoundRow

NO_PROGRESS_BUFFERS = 50  # give up after this many buffers' worth of reports, none fresh


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


class StopRule:
    """When the server stops, asked after each report it takes: aggregations count
    `stop.rounds`; energy and traffic count the reports taken; and it gives up after
    `NO_PROGRESS_BUFFERS` buffers' worth of reports with none fresh. Its limits are
    worked out once a scan: it is the scan's most frequent question."""

    def __init__(self, stop: StopConfig, settings: AsyncConfig, rounds_before: int) -> None:
        self.rows_left = math.inf if stop.rounds is None else stop.rounds - rounds_before
        self.energy_j, self.traffic_bytes = stop.energy_j, stop.traffic_bytes
        self.no_progress = NO_PROGRESS_BUFFERS * settings.buffer_size + settings.concurrency

    def reached(self, st: ServerState, rows: int) -> bool:
        """Whether the server stops, `rows` aggregations into the scan (and why, in
        `st.stop_reason`)."""
        if rows >= self.rows_left:
            st.stop_reason = "rounds"
        elif self.energy_j is not None and st.taken_energy_j >= self.energy_j:
            st.stop_reason = "energy"
        elif self.traffic_bytes is not None and st.taken_traffic_bytes >= self.traffic_bytes:
            st.stop_reason = "traffic"
        elif st.since_aggregation > self.no_progress:
            st.stop_reason = "no progress: sessions keep failing, nothing to aggregate"
        else:
            return False
        return True
