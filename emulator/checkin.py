"""Check-in: which idle clients a launch may ask, and which it asks.

A launch draws a uniform pool of `pool_factor` clients per slot from the whole fleet
(again while fewer than that are eligible, four draws at most), keeps the idle ones
that are online and charged enough, and lets the selection policy choose among them.
A client's charge is worked out only when it is online at a check-in; it is written
when its session ends. A synchronous round is one launch; buffered asynchronous
aggregation launches at many instants. All draws are counter-based uniforms keyed by
the launch's number, so that launches can be selected many at once and the result
does not depend on how many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.selection.policies import Context, Pool

if TYPE_CHECKING:
    from edgetwin.emulator.engine import Engine

REDRAWS = 4  # draws per launch if availability is thin


@dataclass(frozen=True)
class Selection:
    """The clients a check-in chose, the launch each is for, and what the policy was
    asked (its context and pool, and the places in the pool it chose)."""

    clients: I64
    launch: I64
    ctx: Context
    pool: Pool
    places: I64


def one_launch(engine: Engine, k: int, rnd: int, launch: int) -> I64:
    """A synchronous round's clients (round `rnd`, its draws keyed by `launch`)."""
    now = float(engine.env.now)
    sel = launches(engine, np.array([now]), np.array([k]), np.array([launch]))
    if engine.observer.selections:
        engine.observer.selected(sel.ctx, sel.pool, sel.places, np.array([rnd]))
    return sel.clients


def launches(engine: Engine, now_s: F64, k: I64, launch_id: I64, *,
             held: tuple[I64, F64] | None = None) -> Selection:
    """The clients of one or more launches (launch `i` at `now_s[i]` for `k[i]` slots, its
    draws keyed by `launch_id[i]`), and the launch each is for. `held` clients (sorted,
    each with its first instant) are busy after that instant: an earlier launch of the
    same batch invited them. Each client's state is read as of its launch; nothing is
    written."""
    n, model, streams = engine.fleet.n, engine.model, engine.streams
    want = np.ceil(engine.scenario.selection.pool_factor * k).astype(np.int64)
    found_c: list[I64] = []
    found_g: list[I64] = []
    found_b: list[F64] = []
    have = np.zeros(len(k), dtype=np.int64)
    seen = Drawn(n, len(k), int(np.minimum(want, n).sum()) * REDRAWS)
    for redraw in range(REDRAWS):
        todo = np.flatnonzero((have < want) & (k > 0))
        if not len(todo):
            break
        size = np.minimum(want[todo], n)
        g = np.repeat(todo, size)
        draw = np.arange(len(g)) - np.repeat(np.cumsum(size) - size, size)
        every = np.repeat(size >= n, size)  # a pool as large as the fleet is the fleet
        u = streams.uniform("checkin", (launch_id[g] * REDRAWS + redraw) << 32 | draw)
        c = np.where(every, draw, np.minimum((u * n).astype(np.int64), n - 1))
        g, c = seen.new(g, c)
        t = now_s[g]
        idle = engine.busy_until_s[c] <= t
        if held is not None and len(held[0]):
            at = np.minimum(np.searchsorted(held[0], c), len(held[0]) - 1)
            idle &= ~((held[0][at] == c) & (held[1][at] < t))
        g, c, t = g[idle], c[idle], t[idle]
        online = model.availability.online(c, t)  # the charge only of those online
        g, c, t = g[online], c[online], t[online]
        battery = model.battery_at(c, t)
        ok = model.charged_enough(c, battery)
        found_c.append(c[ok])
        found_g.append(g[ok])
        found_b.append(battery[ok])
        have += np.bincount(g[ok], minlength=len(k))
        if np.all(size >= n):
            break
    c, g, b = np.concatenate(found_c), np.concatenate(found_g), np.concatenate(found_b)
    order = np.lexsort((c, g))
    pool = Pool(clients=c[order], launch=g[order], slots=k, now_s=now_s,
                battery_j=b[order])
    def uniforms(clients: I64, launch: I64) -> F64:
        return streams.uniform("selection", launch_id[launch], clients)

    ctx = engine.context(uniforms)
    idx = engine.policy(ctx, pool)
    return Selection(pool.clients[idx], pool.launch[idx], ctx, pool, idx)


class Drawn:
    """The (launch, client) pairs drawn so far: a mask over the fleet for one launch that
    draws a good share of it, sorted keys otherwise (a cost that grows with the draws,
    not with the fleet)."""

    def __init__(self, n: int, launches: int, most: int) -> None:
        self.n = n
        self.mask = np.zeros(n, dtype=bool) if launches == 1 and most * 8 >= n else None
        self.keys = np.zeros(0, dtype=np.int64)

    def new(self, g: I64, c: I64) -> tuple[I64, I64]:
        """The distinct pairs among these not drawn before, by launch and client."""
        if self.mask is not None:
            fresh = np.zeros(self.n, dtype=bool)
            fresh[c] = True
            fresh &= ~self.mask
            self.mask |= fresh
            c = np.flatnonzero(fresh)
            return np.zeros(len(c), dtype=np.int64), c
        keys = np.sort(g * self.n + c)
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
        if len(self.keys):
            at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            keys = keys[self.keys[at] != keys]
            self.keys = np.sort(np.concatenate([self.keys, keys]))
        else:
            self.keys = keys
        return keys // self.n, keys % self.n
