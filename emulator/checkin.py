"""Check-in: which idle clients a launch may ask, and which it asks.

A launch draws a uniform pool of about `pool_factor` clients per slot from the whole
fleet, keeps the idle ones that are online and charged enough, and lets the selection
policy choose among them. A synchronous round is one launch, drawn from the check-in
stream in turn. Buffered asynchronous aggregation launches at many instants; their
pools are drawn as counter-based uniforms keyed by each launch's number, so that the
launches can be selected many at once and the result does not depend on how many.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from emulator.selection.policies import Pool

if TYPE_CHECKING:
    from emulator.engine import Engine

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
REDRAWS = 4  # draws per launch if availability is thin


def one_launch(engine: Engine, k: int, rnd: int) -> I64:
    """A synchronous round's clients: the pool's charge and temperature are brought up to
    date (written) as they are checked."""
    n, model = engine.fleet.n, engine.model
    now = float(engine.env.now)
    want = math.ceil(engine.scenario.selection.pool_factor * k)
    found: list[I64] = []
    have = 0
    for _ in range(REDRAWS):
        size = min(n, want)
        pool = np.sort(engine.checkin_rng.choice(n, size, replace=False))
        pool = pool[engine.busy_until_s[pool] <= now]
        if found:
            pool = np.setdiff1d(pool, np.concatenate(found), assume_unique=True)
        model.bring_up_to_date(pool, np.full(pool.shape, now))
        ok = pool[model.eligible(pool, now)]
        found.append(ok)
        have += len(ok)
        if have >= want or size == n:
            break
    candidates = np.sort(np.concatenate(found)) if len(found) > 1 else found[0]
    pool_ = Pool(clients=candidates, group=np.zeros(len(candidates), dtype=np.int64),
                 k=np.array([k]), now_s=np.array([now]),
                 battery_j=engine.fleet.battery_j[candidates])
    ctx = engine.context()
    watching = engine.observer.watches_selection
    state: Mapping[str, Any] = engine.selection_rng.bit_generator.state if watching else {}
    chosen = candidates[engine.policy(ctx, pool_)]
    if watching:
        engine.observer.selected(ctx, pool_, chosen, state, rnd)
    return chosen


def many_launches(engine: Engine, now_s: F64, k: I64, launch_id: I64) -> tuple[I64, I64]:
    """The clients of several launches at once (launch `i` at `now_s[i]` for `k[i]` slots),
    and the launch each is for; nothing is written."""
    n, model, streams = engine.fleet.n, engine.model, engine.streams
    want = np.ceil(engine.scenario.selection.pool_factor * k).astype(np.int64)
    found_c: list[I64] = []
    found_g: list[I64] = []
    found_b: list[F64] = []
    have = np.zeros(len(k), dtype=np.int64)
    seen = np.zeros(0, dtype=np.int64)
    for redraw in range(REDRAWS):
        todo = np.flatnonzero((have < want) & (k > 0))
        if not len(todo):
            break
        size = np.minimum(want[todo], n)
        g = np.repeat(todo, size)
        draw = np.arange(len(g)) - np.repeat(np.cumsum(size) - size, size)
        every = np.repeat(size >= n, size)  # a pool as large as the fleet is the fleet
        u = streams.uniform("checkin", launch_id[g], np.full(len(g), redraw), draw)
        c = np.where(every, draw, np.minimum((u * n).astype(np.int64), n - 1))
        pair = np.unique(g * n + c)
        pair = pair[~np.isin(pair, seen, assume_unique=True)]
        seen = np.union1d(seen, pair)
        g, c = pair // n, pair % n
        t = now_s[g]
        idle = engine.busy_until_s[c] <= t
        g, c, t = g[idle], c[idle], t[idle]
        battery, _ = model.state_at(c, t)
        ok = model.eligible(c, t, battery)
        found_c.append(c[ok])
        found_g.append(g[ok])
        found_b.append(battery[ok])
        have += np.bincount(g[ok], minlength=len(k))
        if np.all(size >= n):
            break
    c, g, b = np.concatenate(found_c), np.concatenate(found_g), np.concatenate(found_b)
    order = np.lexsort((c, g))
    pool = Pool(clients=c[order], group=g[order], k=k, now_s=now_s, battery_j=b[order])
    keys = launch_id

    def uniforms(clients: I64, group: I64) -> F64:
        return streams.uniform("selection", keys[group], clients)

    idx = engine.policy(engine.context(uniforms), pool)
    return pool.clients[idx], pool.group[idx]
