"""The fleet: per-client attributes drawn before the run, per-group costs computed once.

Everything here is exogenous: drawn from named streams before the clock starts,
as whole arrays, so a run's cost grows with the sessions it simulates rather
than with how many clients sit idle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.config import GroupConfig, Scenario
from edgetwin.emulator.costs import CostTable, GroupCost, group_costs
from edgetwin.emulator.scenario import resolve_profile
from edgetwin.emulator.streams import Streams
from edgetwin.profiles.device import DeviceProfile

MEMORY_WARN_SHARE = 0.5  # warn when more of a group's clients than this cannot fit a session


@dataclass
class Fleet:
    """Column arrays over all clients; `cost_index[i]` points into `costs`."""

    n: int
    groups: list[GroupConfig]
    profiles: list[DeviceProfile]
    group: I64
    speed: F64
    usable_ram_mb: F64
    examples: F64
    local_steps: I64
    rank: I64
    cost_index: I64
    costs: list[GroupCost]
    cost_table: CostTable
    downlink_mbps: F64
    uplink_mbps: F64
    latency_s: F64
    battery_capacity_j: F64  # inf for mains-powered boards
    battery_j: F64  # mutable: charge now
    temperature_c: F64  # mutable: temperature now
    last_touch_s: F64  # mutable: when battery/temperature were last brought up to date
    tz_h: F64
    window_start_h: F64
    window_length_h: F64
    plug_start_h: F64
    plug_length_h: F64


def build_fleet(s: Scenario, streams: Streams, base: Path) -> Fleet:
    counts = s.group_counts
    n = sum(counts)
    group = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    profiles = [resolve_profile(g.profile, base) for g in s.fleet.groups]
    rng = streams.generator("fleet")
    speed = np.empty(n)
    ram = np.empty(n)
    down, up, lat = np.empty(n), np.empty(n), np.empty(n)
    plug_len = np.empty(n)
    cap = np.empty(n)
    rank = np.full(n, s.workload.lora_rank, dtype=np.int64)
    flex = streams.generator("flexlora")
    for gi, g in enumerate(s.fleet.groups):
        sl = slice(int(np.sum(counts[:gi])), int(np.sum(counts[: gi + 1])))
        k = counts[gi]
        p = profiles[gi]
        load = np.clip(g.spread.background_load.sample(rng, k), 0.0, 0.95)
        speed[sl] = np.maximum(g.spread.speed.sample(rng, k), 1e-3) * (1.0 - load)
        ram[sl] = p.memory.usable_ram_mb * np.maximum(g.spread.usable_ram.sample(rng, k), 1e-3)
        down[sl] = g.network.downlink_mbps.sample(rng, k)
        up[sl] = g.network.uplink_mbps.sample(rng, k)
        lat[sl] = g.network.latency_ms.sample(rng, k) / 1000.0
        plug_len[sl] = 24.0 * g.plugged_share if p.battery else 24.0  # a board is on mains
        cap[sl] = p.battery.capacity_wh * 3600.0 if p.battery else math.inf
        if s.workload.algorithm == "flexlora" and g.lora_rank is not None:
            rank[sl] = np.maximum(1, np.round(g.lora_rank.sample(flex, k))).astype(np.int64)
    examples = _examples(s, streams, n)
    local_steps = _local_steps(s, examples, group)
    bat_rng = streams.generator("battery")
    init_pct = np.clip(s.battery.initial_pct.sample(bat_rng, n), 0.0, 100.0)
    battery = np.where(np.isfinite(cap), cap * init_pct / 100.0, math.inf)
    av = streams.generator("availability")
    d = s.availability.diurnal
    if d is not None:
        tz = d.timezones_h.sample(av, n)
        wstart = np.mod(d.window_start_h.sample(av, n), 24.0)
        wlen = np.clip(d.window_length_h.sample(av, n), 0.0, 24.0)
    else:
        tz, wstart, wlen = np.zeros(n), np.zeros(n), np.full(n, 24.0)
    plug_start = np.mod(s.availability.plug_start_h.sample(av, n), 24.0)
    costs, cost_index = group_costs(s, profiles, group, rank, base)
    temp0 = np.array([s.thermal.initial_c if s.thermal.initial_c is not None
                      else p.thermal.throttle_full_c if s.thermal.hot
                      else p.thermal.ambient_c for p in profiles])[group]
    return Fleet(n=n, groups=list(s.fleet.groups), profiles=profiles, group=group, speed=speed,
                 usable_ram_mb=ram, examples=examples, local_steps=local_steps, rank=rank,
                 cost_index=cost_index, costs=costs,
                 cost_table=CostTable.of(costs), downlink_mbps=down, uplink_mbps=up,
                 latency_s=lat, battery_capacity_j=cap, battery_j=battery,
                 temperature_c=temp0.astype(np.float64), last_touch_s=np.zeros(n), tz_h=tz,
                 window_start_h=wstart, window_length_h=wlen, plug_start_h=plug_start,
                 plug_length_h=plug_len)


def memory_warnings(f: Fleet, share: float = MEMORY_WARN_SHARE) -> list[str]:
    """One line per group where more than `share` of the clients have less usable RAM than
    a session's peak memory: their sessions would all end out of memory, so say it first."""
    need_mb = f.cost_table.peak_memory_mb[f.cost_index]
    short = f.usable_ram_mb < need_mb
    counts = np.bincount(f.group, minlength=len(f.groups))
    short_share = np.bincount(f.group, weights=short, minlength=len(f.groups)) / \
        np.maximum(counts, 1)
    out = []
    for gi in np.flatnonzero(short_share > share).tolist():
        m = f.group == gi
        lo, hi = float(need_mb[m].min()), float(need_mb[m].max())
        need = f"{lo:,.0f} MB" if round(lo) == round(hi) else f"{lo:,.0f}-{hi:,.0f} MB"
        ram = f.usable_ram_mb[m]
        out.append(f"fleet group '{f.groups[gi].name}' ({f.groups[gi].profile}): "
                   f"{short_share[gi]:.0%} of its {counts[gi]:,} clients have less usable RAM "
                   f"(median {float(np.median(ram)):,.0f} MB, at most {float(ram.max()):,.0f} "
                   f"MB) than a session's peak memory ({need}): their sessions will end "
                   "out of memory")
    return out


def _examples(s: Scenario, streams: Streams, n: int) -> F64:
    rng = streams.generator("data")
    if s.data.dirichlet_alpha is not None and s.data.total_examples:
        shares = rng.dirichlet(np.full(n, s.data.dirichlet_alpha))
        return np.maximum(1.0, np.round(shares * s.data.total_examples))
    return np.maximum(1.0, np.round(s.data.examples_per_client.sample(rng, n)))


def _local_steps(s: Scenario, examples: F64, group: I64) -> I64:
    """As given, or each client's epochs over its examples, capped at `max_local_steps`."""
    if s.data.local_steps is not None:
        return np.full(examples.shape, s.data.local_steps, dtype=np.int64)
    per_step = np.array([g.setup.batch * g.setup.grad_accum for g in s.fleet.groups])[group]
    epochs = s.data.local_epochs or 1.0
    steps: I64 = np.clip(np.ceil(examples * epochs / per_step).astype(np.int64), 1,
                         s.data.max_local_steps)
    return steps
