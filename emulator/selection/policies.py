"""Client selection policies: each picks, for every launch in a check-in pool, the
clients to invite.

A pool holds, for one or more launches (a synchronous round is one; buffered
asynchronous aggregation may refill several instants at once), clients drawn
uniformly from the idle fleet and found online and charged enough (the check-in of a
real deployment), about `pool_factor` per slot to fill. Ranking a pool rather than the
whole fleet keeps a round's cost proportional to the clients it asks, not to the fleet.
Every policy works on all launches at once, vectorised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin.common.arrays import F64, I64, B
from edgetwin.emulator.selection.view import ClientView


@dataclass(frozen=True)
class Pool:
    """Candidates of one or more launches, launch by launch, each launch's by client id."""

    clients: I64
    launch: I64  # the launch each candidate is for (an index into `slots`)
    slots: I64  # per launch: how many to invite
    now_s: F64  # per launch: when
    battery_j: F64  # per candidate: its charge then

    @property
    def launches(self) -> int:
        return len(self.slots)


@dataclass(frozen=True)
class Context:
    """One selection: the deadline, the clients, the policy's own parameters, and its
    randomness: `uniforms(clients, launch)`, a pure function of who and which launch, so
    that a policy asked again chooses the same, and how launches are batched changes
    nothing."""

    deadline_s: float
    clients: ClientView
    params: Any
    uniforms: Callable[[I64, I64], F64]


Policy = Callable[[Context, Pool], I64]  # the places in the pool of those it invites
LOOK_MORE = 16  # one launch's deadline-aware choice: draws looked at beyond 5/4 of its slots


# --- per-launch building blocks ------------------------------------------------------------
def rank_within(launch: I64, *keys: npt.NDArray[Any]) -> I64:
    """Each candidate's rank in its launch by `keys` (the last key most significant)."""
    order = np.lexsort((*keys, launch))
    starts = np.searchsorted(launch[order], launch[order], side="left")
    rank = np.empty(len(launch), dtype=np.int64)
    rank[order] = np.arange(len(launch)) - starts
    return rank


def count_per_launch(pool: Pool, m: B) -> I64:
    return np.bincount(pool.launch[m], minlength=pool.launches)


def choose_random(ctx: Context, pool: Pool, m: B, k: I64) -> B:
    """Per launch, `k` of the candidates in `m` at random (all of them when fewer)."""
    u = np.where(m, ctx.uniforms(pool.clients, pool.launch), np.inf)
    if pool.launches == 1:  # the k smallest draws, without sorting them all
        want = int(k[0])
        out = np.zeros(len(u), dtype=bool)
        if 0 < want < len(u):
            out[np.argpartition(u, want - 1)[:want]] = True
        elif want >= len(u):
            out[:] = True
        return m & out
    return m & (rank_within(pool.launch, pool.clients, u) < k[pool.launch])


def top(pool: Pool, m: B, score: F64, k: I64) -> tuple[B, I64]:
    """Per launch, the `k` in `m` with the highest score (ties by client id), and ranks."""
    key = np.where(m, -score, np.inf)
    if pool.launches == 1:  # partition rather than sort them all
        return _top_one(pool, m, key, int(k[0]))
    rank = rank_within(pool.launch, pool.clients, key, ~m)
    return m & (rank < k[pool.launch]), rank


def _top_one(pool: Pool, m: B, key: F64, k: int) -> tuple[B, I64]:
    """`top` for one launch: the k lowest keys, ties by client id (the pool's order)."""
    chosen = m.copy()
    if k < int(m.sum()):
        kth = np.partition(key, k - 1)[k - 1] if k > 0 else -np.inf
        chosen = m & (key < kth)
        ties = np.flatnonzero(m & (key == kth))
        chosen[ties[: k - int(chosen.sum())]] = True
    rank = np.zeros(len(key), dtype=np.int64)
    idx = np.flatnonzero(chosen)
    rank[idx[np.lexsort((pool.clients[idx], key[idx]))]] = np.arange(len(idx))
    return chosen, rank


def in_order(pool: Pool, *parts: tuple[B, I64]) -> I64:
    """The chosen candidates (their places in the pool) launch by launch: each part's, in
    the part's order."""
    chosen = np.zeros(len(pool.clients), dtype=bool)
    part = np.zeros(len(pool.clients), dtype=np.int64)
    within = np.zeros(len(pool.clients), dtype=np.int64)
    for i, (m, order) in enumerate(parts):
        chosen |= m
        part[m] = i
        within[m] = order[m]
    idx = np.flatnonzero(chosen)
    return idx[np.lexsort((within[idx], part[idx], pool.launch[idx]))]


def _loss_proxy(ctx: Context, c: I64) -> F64:
    """A stand-in for a client's local loss: high until it has trained, decaying after."""
    return np.exp(-0.2 * ctx.clients.participations[c])  # type: ignore[no-any-return]


# --- the policies --------------------------------------------------------------------------
def random_policy(ctx: Context, pool: Pool) -> I64:
    every = np.ones(len(pool.clients), dtype=bool)
    return in_order(pool, (choose_random(ctx, pool, every, pool.slots), pool.clients))


def deadline_aware(ctx: Context, pool: Pool) -> I64:
    """Those predicted to finish within the deadline (with a safety margin), at random;
    the fastest of the rest where too few fit."""
    if pool.launches == 1:
        lowest = _lowest_that_fit(ctx, pool)
        if lowest is not None:
            return lowest
    duration = ctx.clients.predicted_duration_s(pool.clients)
    fits = duration <= ctx.params.safety * ctx.deadline_s
    first = choose_random(ctx, pool, fits, pool.slots)
    short = pool.slots - count_per_launch(pool, first)
    if not short.any():  # enough fit in every launch: none of the rest is ranked
        return in_order(pool, (first, pool.clients))
    rest, rank = top(pool, ~fits, -duration, short)
    return in_order(pool, (first, pool.clients), (rest, rank))


def _lowest_that_fit(ctx: Context, pool: Pool) -> I64 | None:
    """`deadline_aware` for one launch where enough fit: the lowest draws among those
    that fit, with the durations of the lowest draws only worked out (twice as many
    again while too few of them fit; a pool of ten per slot, most fitting, needs about
    one in six). The same places for distinct draws (keyed uniforms all but never tie);
    None where that would look at the whole pool, or where too few can fit."""
    k, n = int(pool.slots[0]), len(pool.clients)
    look = k + k // 4 + LOOK_MORE
    if k <= 0 or look >= n:
        return None
    u = ctx.uniforms(pool.clients, pool.launch)
    while look < n:
        near = np.argpartition(u, look - 1)[:look]  # no draw outside is below one inside
        duration = ctx.clients.predicted_duration_s(pool.clients[near])
        fits = near[duration <= ctx.params.safety * ctx.deadline_s]
        if len(fits) >= k:
            return np.sort(fits[np.argpartition(u[fits], k - 1)[:k]])  # in the pool's order
        if len(fits) + n - look < k:  # too few fit even if every other one did
            return None
        look *= 2
    return None


def battery_aware(ctx: Context, pool: Pool) -> I64:
    """Highest predicted charge left after the session; plugged-in devices count as full."""
    view = ctx.clients
    c = pool.clients
    left = view.battery_pct(pool.battery_j, c, view.predicted_energy_j(c))
    score = np.where(view.plugged(c, pool.now_s[pool.launch]), 100.0, left)
    chosen, rank = top(pool, score > view.abort_below_pct, score, pool.slots)
    return in_order(pool, (chosen, rank))


def oort(ctx: Context, pool: Pool) -> I64:
    """Oort-style: statistical utility x system penalty, with epsilon exploration."""
    p, view, c = ctx.params, ctx.clients, pool.clients
    explore_n = np.round(p.epsilon * pool.slots).astype(np.int64)
    explore = choose_random(ctx, pool, view.participations[c] == 0, explore_n)
    duration = view.predicted_duration_s(c)
    util = view.examples[c] * _loss_proxy(ctx, c)
    slow = duration > ctx.deadline_s
    util = np.where(slow, util * (ctx.deadline_s / duration) ** p.alpha, util)
    rest, rank = top(pool, ~explore, util, pool.slots - count_per_launch(pool, explore))
    return in_order(pool, (explore, c), (rest, rank))


def power_of_choice(ctx: Context, pool: Pool) -> I64:
    """Draw d x k candidates, keep the k with the highest loss (Cho et al.)."""
    every = np.ones(len(pool.clients), dtype=bool)
    d = np.maximum(1, np.round(ctx.params.d * pool.slots)).astype(np.int64)
    drawn = choose_random(ctx, pool, every, d)
    score = _loss_proxy(ctx, pool.clients) * ctx.clients.examples[pool.clients]
    chosen, rank = top(pool, drawn, score, pool.slots)
    return in_order(pool, (chosen, rank))
