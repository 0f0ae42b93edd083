"""The clients as a selection policy sees them: nominal predictions and what a server
would know, read-only. Policies rank with this, never with the session model; the
charge of the candidates comes with the pool, as of when they checked in."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgetwin.common.arrays import F64, I64, B
from edgetwin.emulator.battery import percent
from edgetwin.emulator.columns import Column
from edgetwin.emulator.costs import CostTable

CHUNK_CLIENTS = 1 << 16  # clients worked out at once for a whole-fleet column
# fleet clients a pool client, at most, for every client's estimate to be worked out at
# once (which then costs at most as much as this many such pools' formulas)
FLEET_PER_POOL = 16


def read_only(a: Column) -> Column:
    """A view of `a` that sees its updates but cannot write them."""
    if isinstance(a, np.ndarray):
        v = a.view()
        v.flags.writeable = False
        return v
    return _ReadOnly(a)


class _ReadOnly:
    """A column read through, never written."""

    def __init__(self, column: Column) -> None:
        self._column = column

    def __getitem__(self, c: I64) -> Any:
        return self._column[c]

    def __len__(self) -> int:
        return len(self._column)


@dataclass(frozen=True)
class ClientView:
    """Per-client columns read by client id; `costs` by `cost_index`."""

    costs: CostTable
    cost_index: Column
    group: Column
    speed: Column
    local_steps: Column
    examples: Column
    downlink_mbps: Column
    uplink_mbps: Column
    latency_s: Column
    capacity_j: Column  # inf for mains power
    participations: Column  # sessions started so far
    plugged_at: Callable[[I64, F64], B]
    abort_below_pct: float

    # every client's predicted duration and the costs it was worked out from (see
    # `_every_duration_s`); a view made with other costs starts without
    _durations: dict[str, tuple[bytes, F64]] = field(default_factory=dict, init=False,
                                                    repr=False, compare=False)

    def predicted_duration_s(self, c: I64) -> F64:
        """The server's estimate of a session: nominal transfers and steps at the
        client's speed."""
        every = self._every_duration_s(len(c))
        return self._duration_s(c) if every is None else every[c]

    def _every_duration_s(self, asked: int) -> F64 | None:
        """Every client's estimate at once, where the fleet is held whole and a pool of
        a sixteenth of it or more asks: such pools then read one column, not eight (the
        same numbers: each is worked out alone). Worked out again where the costs have
        changed since (a recalibration corrects them in place); None: use the formula."""
        costs = b"".join(a.tobytes() for a in (self.costs.download_bytes,
                                               self.costs.upload_bytes, self.costs.step_s))
        held = self._durations.get("every")
        if held is not None and held[0] == costs:
            return held[1]
        n = len(self.speed)
        read = (self.cost_index, self.downlink_mbps, self.uplink_mbps, self.latency_s,
                self.local_steps, self.speed)
        if asked * FLEET_PER_POOL < n or not all(isinstance(x, np.ndarray) for x in read):
            return None
        every = np.empty(n)
        for first in range(0, n, CHUNK_CLIENTS):  # temporaries of a chunk, not of the fleet
            every[first:first + CHUNK_CLIENTS] = self._duration_s(
                np.arange(first, min(first + CHUNK_CLIENTS, n), dtype=np.int64))
        self._durations["every"] = (costs, every)
        return every

    def _duration_s(self, c: I64) -> F64:
        k = self.cost_index[c]
        transfer: F64 = (self.costs.download_bytes[k] * 8 / (self.downlink_mbps[c] * 1e6)
                    + self.costs.upload_bytes[k] * 8 / (self.uplink_mbps[c] * 1e6)
                    + 2 * self.latency_s[c])
        steps_s: F64 = self.local_steps[c] * self.costs.step_s[k] / self.speed[c]
        return transfer + steps_s

    def predicted_energy_j(self, c: I64) -> F64:
        """Nominal energy of the local steps."""
        k = self.cost_index[c]
        energy_j: F64 = self.local_steps[c] * self.costs.step_s[k] / self.speed[c] * \
            self.costs.busy_w[k]
        return energy_j

    def battery_pct(self, battery_j: F64, c: I64, minus_j: F64 | float = 0.0) -> F64:
        """Clients `c` at charge `battery_j`, less `minus_j`, in percent; mains reads 100."""
        return percent(battery_j - minus_j, self.capacity_j[c])

    def plugged(self, c: I64, t_s: F64) -> B:
        """Whether each client is on its charger at its time."""
        return self.plugged_at(c, t_s)

    def with_costs(self, costs: CostTable) -> ClientView:
        """The same clients predicted with other nominal costs."""
        return dataclasses.replace(self, costs=costs)
