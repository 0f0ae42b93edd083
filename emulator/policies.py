"""Client selection policies, pluggable by name.

A policy ranks a candidate pool: clients drawn uniformly from the idle fleet and
found online and charged enough (the check-in of a real deployment), about
`pool_factor` per slot to fill. Ranking the pool rather than the whole fleet keeps
a round's cost proportional to the clients it asks, not to the fleet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from emulator.battery import percent
from emulator.scenario import Selection
from emulator.session import SessionModel

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass
class Context:
    now_s: float
    deadline_s: float
    model: SessionModel
    participations: I64  # per client, sessions started so far
    rng: np.random.Generator  # the selection stream
    cfg: Selection


Policy = Callable[[Context, I64, int], I64]


def predicted_duration_s(ctx: Context, c: I64) -> F64:
    """The server's estimate of a session: nominal transfers and steps at the client's speed."""
    m, f = ctx.model, ctx.model.f
    k = f.cost_index[c]
    transfer = (m.c_down[k] * 8 / (f.downlink_mbps[c] * 1e6) + m.c_up[k] * 8 /
                (f.uplink_mbps[c] * 1e6) + 2 * f.latency_s[c])
    return transfer + f.local_steps[c] * m.c_step_s[k] / f.speed[c]  # type: ignore[no-any-return]


def _loss_proxy(ctx: Context, c: I64) -> F64:
    """A stand-in for a client's local loss: high until it has trained, decaying after."""
    return np.exp(-0.2 * ctx.participations[c])  # type: ignore[no-any-return]


def _top(c: I64, score: F64, k: int) -> I64:
    order = np.lexsort((c, -score))  # highest score first, ties by client id
    return c[order[:k]]


def random_policy(ctx: Context, c: I64, k: int) -> I64:
    if len(c) <= k:
        return c
    return np.sort(ctx.rng.choice(c, k, replace=False))


def deadline_aware(ctx: Context, c: I64, k: int) -> I64:
    """Those predicted to finish within the deadline (with a safety margin), at random."""
    fits = predicted_duration_s(ctx, c) <= ctx.cfg.deadline_safety * ctx.deadline_s
    first = random_policy(ctx, c[fits], k)
    if len(first) >= k:
        return first
    rest = c[~fits]
    return np.concatenate([first, _top(rest, -predicted_duration_s(ctx, rest), k - len(first))])


def battery_aware(ctx: Context, c: I64, k: int) -> I64:
    """Highest predicted charge left after the session; plugged-in devices count as full."""
    m, f = ctx.model, ctx.model.f
    kk = f.cost_index[c]
    energy = f.local_steps[c] * m.c_step_s[kk] / f.speed[c] * m.c_busy_w[kk]
    left = percent(f.battery_j[c] - energy, f.battery_capacity_j[c])
    plugged = m.availability.plugged(c, np.full(c.shape, ctx.now_s))
    score = np.where(plugged, 100.0, left)
    keep = score > ctx.model.s.battery.abort_below_pct
    return _top(c[keep], score[keep], k)


def oort(ctx: Context, c: I64, k: int) -> I64:
    """Oort-style: statistical utility x system penalty, with epsilon exploration."""
    f = ctx.model.f
    explore_n = round(ctx.cfg.oort_epsilon * k)
    fresh = c[ctx.participations[c] == 0]
    explore = random_policy(ctx, fresh, explore_n) if explore_n else fresh[:0]
    rest = np.setdiff1d(c, explore, assume_unique=True)
    duration = predicted_duration_s(ctx, rest)
    util = f.examples[rest] * _loss_proxy(ctx, rest)
    slow = duration > ctx.deadline_s
    util = np.where(slow, util * (ctx.deadline_s / duration) ** ctx.cfg.oort_alpha, util)
    return np.concatenate([explore, _top(rest, util, k - len(explore))])


def power_of_choice(ctx: Context, c: I64, k: int) -> I64:
    """Draw d x k candidates, keep the k with the highest loss (Cho et al.)."""
    d = max(1, round(ctx.cfg.power_of_choice_d * k))
    pool = random_policy(ctx, c, d)
    return _top(pool, _loss_proxy(ctx, pool) * ctx.model.f.examples[pool], k)


POLICIES: dict[str, Policy] = {
    "random": random_policy,
    "deadline_aware": deadline_aware,
    "battery_aware": battery_aware,
    "oort": oort,
    "power_of_choice": power_of_choice,
}
