"""The sessions a run recorded, as columns: one list of columns for the engine, the
metrics and the CSV, filled batch by batch into preallocated arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin.emulator.margins import Timing
from edgetwin.emulator.session import Outcome, Planned

# the columns of client_sessions.csv, in order, with their array types
SESSION_COLUMNS: dict[str, type[np.generic]] = {
    "client": np.int64, "group": np.int64, "round": np.int64, "start_s": np.float64,
    "end_s": np.float64, "download_s": np.float64, "compute_s": np.float64,
    "upload_s": np.float64, "steps": np.int64, "energy_j": np.float64,
    "peak_memory_mb": np.float64, "upload_bytes": np.float64, "download_bytes": np.float64,
    "status": np.int64, "temp_start_c": np.float64, "temp_end_c": np.float64,
    "throttled_s": np.float64, "battery_start_pct": np.float64,
    "battery_end_pct": np.float64, "on_charger": np.int64, "compute_factor": np.float64,
    "timing_margin": np.float64, "p_complete": np.float64, "session_s_p05": np.float64,
    "session_s_p95": np.float64}
TIMING_COLUMNS = ("timing_margin", "p_complete", "session_s_p05", "session_s_p95")

Columns = dict[str, npt.NDArray[Any]]


class SessionLog:
    """Session rows in preallocated columns that double when full."""

    def __init__(self, capacity: int = 1024) -> None:
        self.n = 0
        self._cols: Columns = {k: np.empty(max(capacity, 1), dtype=t)
                               for k, t in SESSION_COLUMNS.items()}
        self.energy_j = 0.0  # running totals, for the stopping rules
        self.traffic_bytes = 0.0

    def add(self, p: Planned, o: Outcome, group: npt.NDArray[np.int64],
            rnd: npt.NDArray[np.int64], status: npt.NDArray[np.int64],
            timing: Timing | None = None) -> None:
        """The sessions' rows; `status` as the run ended them (the outcome's, or `stale`);
        without `timing`, its columns wait for `fill`."""
        up, down = np.round(o.upload_bytes), np.round(o.download_bytes)
        times = {k: np.full(len(p.client), np.nan) for k in TIMING_COLUMNS} \
            if timing is None else {k: getattr(timing, k) for k in TIMING_COLUMNS}
        self.append({"client": p.client, "group": group, "round": rnd, "start_s": p.start_s,
                     "end_s": o.end_s, "download_s": o.download_s, "compute_s": o.compute_s,
                     "upload_s": o.upload_s, "steps": o.steps, "energy_j": o.energy_j,
                     "peak_memory_mb": p.peak_memory_mb, "upload_bytes": up,
                     "download_bytes": down, "status": status, "temp_start_c": p.temp_start_c,
                     "temp_end_c": o.temp_end_c, "throttled_s": o.throttled_s,
                     "battery_start_pct": o.battery_start_pct,
                     "battery_end_pct": o.battery_end_pct, "on_charger": p.on_charger,
                     "compute_factor": p.compute_factor, **times})
        self.energy_j += float(o.energy_j.sum())
        self.traffic_bytes += float(up.sum() + down.sum())

    def append(self, rows: Columns) -> None:
        m = len(rows["client"])
        if self.n + m > len(self._cols["client"]):
            size = max(2 * len(self._cols["client"]), self.n + m)
            for k, col in self._cols.items():
                grown = np.empty(size, dtype=col.dtype)
                grown[: self.n] = col[: self.n]
                self._cols[k] = grown
        for k, col in self._cols.items():
            col[self.n: self.n + m] = rows[k]
        self.n += m

    def fill(self, rows: npt.NDArray[np.int64], timing: Timing) -> None:
        """The timing columns of rows added without them."""
        for k in TIMING_COLUMNS:
            self._cols[k][rows] = getattr(timing, k)

    def columns(self) -> Columns:
        """The rows so far (empty when none)."""
        if self.n == 0:
            return {}
        return {k: col[: self.n] for k, col in self._cols.items()}
