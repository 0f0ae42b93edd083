"""The fleet: per-client columns of keyed draws, per-group costs computed once.

Everything drawn here is exogenous: a pure function of the client, worked out when a
client is asked (held whole for fleets small enough), so that a run's cost and memory
grow with the clients it asks rather than with how many sit idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.columns import (
    EAGER_CLIENTS,
    Column,
    Kept,
    KeptColumn,
    Of,
    StateColumn,
    column,
    state,
)
from edgetwin.emulator.config import GroupConfig, Scenario
from edgetwin.emulator.costs import CostTable, GroupCost, group_costs
from edgetwin.emulator.draws import LEAST_SPREAD, Draws, pairs_in_use
from edgetwin.emulator.scenario import resolve_profile
from edgetwin.emulator.streams import Streams
from edgetwin.profiles.device import DeviceProfile

# a fleet past EAGER_CLIENTS is held whole where its run is expected to draw this many
# candidates a client or more (a million clients, 1.3 a client: worked out per client,
# the engine 1.72 s and 164 MB against 1.99 s and 335 MB held whole; 3.9 a client: about
# even; 13 a client: held whole, with the compiled check-in, 6.1 s against 9.2 s)
WHOLE_FROM_CANDIDATES = 4
MEMORY_WARN_SHARE = 0.5  # warn when more of a group's clients than this cannot fit a session
WARN_SAMPLE = 100_000  # clients of a group looked at for that warning, at most


@dataclass
class Fleet:
    """Per-client columns (see `columns`); `cost_index[i]` points into `costs`."""

    n: int
    groups: list[GroupConfig]
    profiles: list[DeviceProfile]
    counts: list[int]  # clients per group, in order: a group's clients have consecutive ids
    group: Column
    speed: Column
    usable_ram_mb: Column
    examples: Column
    local_steps: Column
    rank: Column
    cost_index: Column
    costs: list[GroupCost]
    cost_table: CostTable
    downlink_mbps: Column
    uplink_mbps: Column
    latency_s: Column
    battery_capacity_j: Column  # inf for mains-powered boards
    battery_j: StateColumn  # charge now
    temperature_c: StateColumn  # temperature now
    last_touch_s: StateColumn  # when battery/temperature were last brought up to date
    tz_h: Column
    window_start_h: Column
    window_length_h: Column
    plug_start_h: Column
    plug_length_h: Column
    kept: Kept | None  # what the run writes, for large fleets (None: whole arrays)

    @property
    def whole(self) -> bool:
        """Whether the columns are held whole (see `holds_whole`)."""
        return self.kept is None

    def column(self, of: Of) -> Column:
        """A further per-client column, held as this fleet holds its own."""
        return column(self.n, of, self.whole)

    def write_state(self, c: I64, battery_j: F64, temperature_c: F64, last_touch_s: F64
                    ) -> None:
        """Clients `c`'s charge, temperature and the time they were brought up to date,
        written at once (kept state places the clients once)."""
        pairs = ((self.battery_j, battery_j), (self.temperature_c, temperature_c),
                 (self.last_touch_s, last_touch_s))
        if self.kept is None:
            for col, value in pairs:
                col[c] = value
        else:
            self.kept.write(c, {col: value for col, value in pairs if isinstance(col, KeptColumn)})

    def state(self, default: Of | float, dtype: npt.DTypeLike = np.float64) -> StateColumn:
        """A further column the run writes, kept as this fleet keeps its own."""
        return state(self.n, default, self.kept, dtype)


def build_fleet(s: Scenario, streams: Streams, base: Path, whole: bool | None = None
                ) -> Fleet:
    """The fleet of scenario `s`: held whole or worked out per client as `holds_whole`
    (or `whole`) says; the same values either way."""
    counts = [int(k) for k in s.group_counts]
    n = sum(counts)
    whole = holds_whole(s, n) if whole is None else whole
    profiles = [resolve_profile(g.profile, base) for g in s.fleet.groups]
    d = Draws(s, streams, profiles, counts)
    col = partial(column, n, whole=whole)
    group = col(d.group)
    rank = col(d.rank)
    keys, width = pairs_in_use(d, n)
    costs = group_costs(s, profiles, keys, width, base)

    def cost_index(c: I64) -> I64:
        at: I64 = np.searchsorted(keys, d.group(c) * width + d.rank(c))
        return at

    examples = col(d.examples)
    kept = None if whole else Kept(n)
    temp0 = np.array([s.thermal.initial_c if s.thermal.initial_c is not None
                      else p.thermal.throttle_full_c if s.thermal.hot
                      else p.thermal.ambient_c for p in profiles], dtype=np.float64)
    return Fleet(n=n, groups=list(s.fleet.groups), profiles=profiles, counts=counts,
                 group=group, speed=col(d.speed), usable_ram_mb=col(d.usable_ram_mb),
                 examples=examples,
                 local_steps=col(lambda c: d.local_steps(c, examples)), rank=rank,
                 cost_index=col(cost_index), costs=costs, cost_table=CostTable.of(costs),
                 downlink_mbps=col(d.downlink_mbps), uplink_mbps=col(d.uplink_mbps),
                 latency_s=col(d.latency_s), battery_capacity_j=col(d.capacity_j),
                 battery_j=state(n, d.initial_battery_j, kept),
                 temperature_c=state(n, lambda c: temp0[d.group(c)], kept),
                 last_touch_s=state(n, 0.0, kept),
                 tz_h=col(d.tz_h), window_start_h=col(d.window_start_h),
                 window_length_h=col(d.window_length_h), plug_start_h=col(d.plug_start_h),
                 plug_length_h=col(d.plug_length_h), kept=kept)


def holds_whole(s: Scenario, n: int) -> bool:
    """Whether a fleet of `n` clients is held whole: up to `EAGER_CLIENTS`, or where the
    run's check-ins are expected to draw `WHOLE_FROM_CANDIDATES` candidates a client or
    more (each is asked several times, and one pass over them costs less than working
    them out at every ask; at fewer, building and holding the whole fleet costs more)."""
    candidates = s.expected_sessions * s.selection.pool_factor
    return n <= EAGER_CLIENTS or WHOLE_FROM_CANDIDATES * n <= candidates


def memory_warnings(f: Fleet, share: float = MEMORY_WARN_SHARE) -> list[str]:
    """One line per group where more than `share` of the clients have less usable RAM than
    a session's peak memory: their sessions would all end out of memory, so say it first.
    A group of more than `WARN_SAMPLE` clients is judged on that many, evenly spread."""
    out = []
    end = 0
    table = f.cost_table
    for gi, count in enumerate(f.counts):
        start, end = end, end + count  # the group's clients
        most_mb = float(table.peak_memory_mb[table.group == gi].max(initial=0.0))
        if not count or most_mb <= least_usable_ram_mb(f, gi):  # none can be short
            continue
        ids = np.arange(start, end) if count <= WARN_SAMPLE else \
            np.linspace(start, end - 1, WARN_SAMPLE).round().astype(np.int64)
        need_mb = table.peak_memory_mb[f.cost_index[ids]]
        ram = f.usable_ram_mb[ids]
        short_share = float(np.mean(ram < need_mb))
        if short_share <= share:
            continue
        lo, hi = float(need_mb.min()), float(need_mb.max())
        need = f"{lo:,.0f} MB" if round(lo) == round(hi) else f"{lo:,.0f}-{hi:,.0f} MB"
        of = f"{count:,} clients" if count <= WARN_SAMPLE else \
            f"{count:,} clients (judged on {WARN_SAMPLE:,} of them)"
        out.append(f"fleet group '{f.groups[gi].name}' ({f.groups[gi].profile}): "
                   f"{short_share:.0%} of its {of} have less usable RAM "
                   f"(median {float(np.median(ram)):,.0f} MB, at most {float(ram.max()):,.0f} "
                   f"MB) than a session's peak memory ({need}): their sessions will end "
                   "out of memory")
    return out


def least_usable_ram_mb(f: Fleet, gi: int) -> float:
    """The least usable RAM a client of group `gi` can draw (its profile's, times the
    least of its spread, as `Draws.usable_ram_mb` works it out): where every session
    fits that, no client need be looked at."""
    d = f.groups[gi].spread.usable_ram
    spread = max(min(d.lower_bound(), d.upper_bound()), LEAST_SPREAD)  # (low <= high: checked)
    return f.profiles[gi].memory.usable_ram_mb * spread
