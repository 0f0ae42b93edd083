"""A batch of asynchronous launches selected at once: to a fixed point, each launch's
choice holding with the earlier ones' clients held busy (`edgetwin.emulator.async_rounds`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.checkin import Selection, candidates, choose

if TYPE_CHECKING:
    from edgetwin.emulator.engine import Engine

RESELECTIONS = 8  # passes over one batch of launches, each with the earlier choices held


def select_batch(engine: Engine, at: F64, count: I64, ids: I64
                 ) -> tuple[I64, I64, int, list[tuple[int, Selection]]]:
    """The launches' clients, and how many launches are certain. A client invited by
    one launch is busy at the later ones: the launches are selected again with the
    earlier ones' clients held until every launch's choice holds with the others'
    (a launch's choice depends only on those before it, so each pass settles at
    least one more; the rest are uncertain if it takes too many). Also each pass, with
    the first launch it selected."""
    cands = candidates(engine, at, count, ids)[1]  # once: eligibility is the same each pass
    first = choose(engine, cands)
    clients, launch = first.clients, first.launch
    passes = [(0, first)]
    start = 1
    for _ in range(RESELECTIONS):
        if start >= len(at):
            return clients, launch, len(at), passes
        order = np.lexsort((at[launch], clients))
        held = clients[order], at[launch][order]
        sel = choose(engine, cands.after(start), held)
        passes.append((start, sel))
        again, again_launch = sel.clients, sel.launch + start
        keep = launch < start
        changed = _first_change(clients[~keep], launch[~keep], again, again_launch)
        clients = np.concatenate([clients[keep], again])
        launch = np.concatenate([launch[keep], again_launch])
        if changed is None:
            return clients, launch, len(at), passes
        start = changed + 1
    return clients, launch, start, passes


def _first_change(clients: I64, launch: I64, again: I64, again_launch: I64) -> int | None:
    """The first launch whose clients (in the policy's order) differ between two
    choices, or None."""
    if np.array_equal(launch, again_launch) and np.array_equal(clients, again):
        return None
    # launch by launch, each launch's clients in the policy's order
    a, b = np.argsort(launch, kind="stable"), np.argsort(again_launch, kind="stable")
    clients, launch, again, again_launch = clients[a], launch[a], again[b], again_launch[b]
    n = min(len(launch), len(again_launch))
    differs = np.flatnonzero((launch[:n] != again_launch[:n]) | (clients[:n] != again[:n]))
    at = int(differs[0]) if len(differs) else n
    # the first differing place belongs to the earlier of the two launches there
    candidates_at = [x[at] for x in (launch, again_launch) if at < len(x)]
    return int(min(candidates_at))


def tell_observer(engine: Engine, passes: list[tuple[int, Selection]], valid: int,
                  versions: list[int]) -> None:
    """Tell the observer each of the first `valid` launches (at model `versions`), from
    the pass that chose it last."""
    v = np.array(versions, dtype=np.int64)
    for k, (start, sel) in enumerate(passes):
        end = min(passes[k + 1][0] if k + 1 < len(passes) else valid, valid)
        j = start + np.arange(sel.pool.launches)
        counted = j < end
        if counted.any():
            engine.observer.selected(sel.ctx, sel.pool, sel.places,
                                     v[np.minimum(j, len(v) - 1)], counted)
