"""A client's attributes as keyed draws: each a pure function of the client (its group's
distribution at the uniform `("fleet", attribute, client)`), so that any client's can
be worked out without drawing anyone else's."""

from __future__ import annotations

import math

import numpy as np

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.clock import mod_24
from edgetwin.emulator.columns import Column, Of
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.dist import Dist
from edgetwin.emulator.streams import Streams
from edgetwin.profiles.device import DeviceProfile

# a client's attributes: uniform("fleet", index in this list, client) through each
# attribute's distribution; append only
ATTRIBUTES = ("speed", "background_load", "usable_ram", "downlink_mbps", "uplink_mbps",
              "latency_ms", "lora_rank", "examples", "battery_pct", "timezone_h",
              "window_start_h", "window_length_h", "plug_start_h")
CHUNK = 1 << 20  # clients at a time where the whole fleet must be looked at
LEAST_SPREAD = 1e-3  # a drawn speed or RAM factor is at least this


class Draws:
    """Each attribute of any clients, a pure function of the client: its group's
    distribution at the client's keyed uniform."""

    def __init__(self, s: Scenario, streams: Streams, profiles: list[DeviceProfile],
                 counts: list[int]) -> None:
        self.s, self.streams, self.profiles = s, streams, profiles
        self.groups = list(s.fleet.groups)
        self.counts = counts
        self.starts = np.cumsum([0, *counts])[1:-1]  # the first client of groups 1, 2, ...
        ps = profiles
        self.ram_mb = np.array([p.memory.usable_ram_mb for p in ps], dtype=np.float64)
        self.capacity = np.array([p.battery.capacity_wh * 3600.0 if p.battery else math.inf
                                  for p in ps])
        self.plug_h = np.array([24.0 * g.plugged_share if p.battery else 24.0  # mains
                                for g, p in zip(self.groups, ps, strict=True)])
        self.per_step = np.array([g.setup.batch * g.setup.grad_accum for g in self.groups])
        gs = self.groups
        self.nominal_speed = self.by_group("speed", [g.spread.speed for g in gs])
        self.load = self.by_group("background_load", [g.spread.background_load for g in gs])
        self.ram_spread = self.by_group("usable_ram", [g.spread.usable_ram for g in gs])
        self.downlink_mbps = self.by_group("downlink_mbps", [g.network.downlink_mbps for g in gs])
        self.uplink_mbps = self.by_group("uplink_mbps", [g.network.uplink_mbps for g in gs])
        self.latency_ms = self.by_group("latency_ms", [g.network.latency_ms for g in gs])
        self.drawn_rank = self.by_group("lora_rank", [g.lora_rank or Dist() for g in gs])
        self.dirichlet_sum = self._dirichlet_sum(sum(counts))

    def group(self, c: I64) -> I64:
        g: I64 = self.starts.searchsorted(c, side="right")  # (numpy's function wraps this)
        return g

    def uniform(self, c: I64, name: str) -> F64:
        return self.streams.uniform("fleet", ATTRIBUTES.index(name), c)

    def by_group(self, name: str, dists: list[Dist]) -> Of:
        """The column of attribute `name`, drawn from each group's own distribution: the
        groups' constants read from a table, each distinct other distribution once for
        all its groups' clients (the same values as group by group)."""
        const = np.array([x.value if x.dist == "const" else np.nan for x in dists],
                         dtype=np.float64)
        if all(x == dists[0] for x in dists):
            if dists[0].dist == "const":  # no draw to make
                return lambda c: np.full(c.shape, const[0])
            return lambda c: dists[0].quantile(self.uniform(c, name))
        drawn = list(dict.fromkeys(x for x in dists if x.dist != "const"))
        # each group's place in `drawn` (-1: a constant)
        place = np.array([drawn.index(x) if x.dist != "const" else -1 for x in dists])

        def of(c: I64) -> F64:
            g = self.group(c)
            out: F64 = const[g]
            if drawn:
                at = place[g]
                u = self.uniform(c, name)
                for k, dist in enumerate(drawn):
                    m = at == k
                    if m.any():
                        out[m] = dist.quantile(u[m])
            return out
        return of

    def speed(self, c: I64) -> F64:
        load = np.clip(self.load(c), 0.0, 0.95)
        return np.maximum(self.nominal_speed(c), LEAST_SPREAD) * (1.0 - load)

    def usable_ram_mb(self, c: I64) -> F64:
        return self.ram_mb[self.group(c)] * np.maximum(self.ram_spread(c), LEAST_SPREAD)

    def latency_s(self, c: I64) -> F64:
        return self.latency_ms(c) / 1000.0

    def capacity_j(self, c: I64) -> F64:
        return self.capacity[self.group(c)]

    def plug_length_h(self, c: I64) -> F64:
        return self.plug_h[self.group(c)]

    def rank(self, c: I64) -> I64:
        rank = np.full(c.shape, self.s.workload.lora_rank, dtype=np.int64)
        if self.s.workload.algorithm != "flexlora":
            return rank
        own = np.array([g.lora_rank is not None for g in self.groups])[self.group(c)]
        rank[own] = np.maximum(1, np.round(self.drawn_rank(c)[own])).astype(np.int64)
        return rank

    def examples(self, c: I64) -> F64:
        data = self.s.data
        if self.dirichlet_sum is not None:
            assert data.total_examples
            share = self._gamma(c) / self.dirichlet_sum
            return np.maximum(1.0, np.round(share * data.total_examples))
        return np.maximum(1.0, np.round(data.examples_per_client.quantile(
            self.uniform(c, "examples"))))

    def _gamma(self, c: I64) -> F64:
        from scipy.special import gammaincinv

        alpha = self.s.data.dirichlet_alpha
        return np.asarray(gammaincinv(alpha, self.uniform(c, "examples")), dtype=np.float64)

    def _dirichlet_sum(self, n: int) -> float | None:
        """The Dirichlet split's normaliser (its gamma draws over the whole fleet, in
        chunks, summed the same way however the fleet is held)."""
        if self.s.data.dirichlet_alpha is None or not self.s.data.total_examples:
            return None
        return math.fsum(float(self._gamma(np.arange(a, min(a + CHUNK, n))).sum())
                         for a in range(0, n, CHUNK))

    def local_steps(self, c: I64, examples: Column) -> I64:
        """As given, or each client's epochs over its `examples` (read only then),
        capped at `max_local_steps`."""
        data = self.s.data
        if data.local_steps is not None:
            return np.full(c.shape, data.local_steps, dtype=np.int64)
        epochs = data.local_epochs or 1.0
        steps: I64 = np.clip(np.ceil(examples[c] * epochs / self.per_step[self.group(c)])
                             .astype(np.int64), 1, data.max_local_steps)
        return steps

    def initial_battery_j(self, c: I64) -> F64:
        pct = np.clip(self.s.battery.initial_pct.quantile(self.uniform(c, "battery_pct")),
                      0.0, 100.0)
        cap = self.capacity_j(c)
        return np.where(np.isfinite(cap), cap * pct / 100.0, math.inf)

    def tz_h(self, c: I64) -> F64:
        d = self.s.availability.diurnal
        return np.zeros(c.shape) if d is None else d.timezones_h.quantile(
            self.uniform(c, "timezone_h"))

    def window_start_h(self, c: I64) -> F64:
        d = self.s.availability.diurnal
        return np.zeros(c.shape) if d is None else mod_24(d.window_start_h.quantile(
            self.uniform(c, "window_start_h")))

    def window_length_h(self, c: I64) -> F64:
        d = self.s.availability.diurnal
        return np.full(c.shape, 24.0) if d is None else np.clip(d.window_length_h.quantile(
            self.uniform(c, "window_length_h")), 0.0, 24.0)

    def plug_start_h(self, c: I64) -> F64:
        return mod_24(self.s.availability.plug_start_h.quantile(
            self.uniform(c, "plug_start_h")))


def pairs_in_use(d: Draws, n: int) -> tuple[I64, int]:
    """The (group, rank) pairs some client has, as `group * width + rank`, sorted: each
    group with the scenario's rank, or (FlexLoRA with drawn ranks) every pair drawn,
    looked at in chunks."""
    if d.s.workload.algorithm != "flexlora" or all(g.lora_rank is None for g in d.groups):
        width = d.s.workload.lora_rank + 1
        keys = np.arange(len(d.groups)) * width + d.s.workload.lora_rank
        return keys[np.array(d.counts) > 0], width
    chunks = [np.arange(a, min(a + CHUNK, n)) for a in range(0, n, CHUNK)]
    width = max(int(d.rank(c).max()) for c in chunks) + 1
    keys = np.unique(np.concatenate([np.unique(d.group(c) * width + d.rank(c))
                                     for c in chunks]))
    return keys, width
