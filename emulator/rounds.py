"""What orchestrators record of each round (or asynchronous aggregation), and the clock
rules they share: a leaf that the engine, its orchestrators and its observers import,
and that imports none of them."""

from __future__ import annotations

from dataclasses import dataclass

IDLE_RETRY_S = 600.0  # with nobody eligible, look again after this long
MAX_IDLE_S = 7 * 86400.0  # and give up after a week of nobody


@dataclass
class RoundRow:
    round: int
    start_s: float
    closed_s: float  # when the server stopped waiting for reports
    end_s: float  # after aggregation
    selected: int
    reported: int
    aggregated: bool
    energy_j: float
    upload_bytes: float
    download_bytes: float
    mean_staleness: float = 0.0
    discarded_stale: int = 0
