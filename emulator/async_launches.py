"""A batch of asynchronous launches selected at once: to a fixed point, each launch's
choice holding with the earlier ones' clients held busy (`edgetwin.emulator.async_rounds`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgetwin.common.arrays import F64, I64, B
from edgetwin.emulator.checkin import Candidates, Selection, busy_among, candidates, choose

if TYPE_CHECKING:
    from edgetwin.emulator.engine import Engine

RESELECTIONS = 8  # passes over one batch of launches, each with the earlier choices held
Pass = tuple[I64, Selection]  # the launches of the batch a pass chose for, and its choice


def select_batch(engine: Engine, at: F64, count: I64, ids: I64
                 ) -> tuple[I64, I64, int, list[Pass]]:
    """The launches' clients (launch by launch, each in its policy's order), the launch
    each is for, and how many launches are certain; also each pass: the launches it
    chose for, and its choice.

    A client invited by one launch is busy at the later ones (`at` increases), and a
    launch's choice depends only on its own candidates and which of them the earlier
    launches invited. The first pass chooses with none held; each pass after chooses
    again only for the launches where that changed, until none does. Each pass settles
    at least one more launch; the rest are uncertain if it takes too many passes."""
    cands = candidates(engine, at, count, ids)[1]  # once: eligibility is the same each pass
    first = choose(engine, cands)
    clients, launch = first.clients, first.launch
    passes: list[Pass] = [(np.arange(len(at)), first)]
    assumed = np.zeros(len(cands.clients), dtype=bool)  # busy, as each choice was made
    for _ in range(RESELECTIONS):
        held = _held(clients, at[launch])
        busy, redo = _held_changed(cands, held, assumed)
        if not len(redo):
            return clients, launch, len(at), passes
        sel = choose(engine, cands.only(redo), held)
        passes.append((redo, sel))
        keep = ~_among(launch, redo, len(at))
        clients = np.concatenate([clients[keep], sel.clients])
        launch = np.concatenate([launch[keep], redo[sel.launch]])
        order = np.argsort(launch, kind="stable")  # launch by launch, each in its own order
        clients, launch = clients[order], launch[order]
        again = _among(cands.launch, redo, len(at))
        assumed[again] = busy[again]
    redo = _held_changed(cands, _held(clients, at[launch]), assumed)[1]
    return clients, launch, int(redo[0]) if len(redo) else len(at), passes


def _held(clients: I64, at_s: F64) -> tuple[I64, F64]:
    """The invited clients sorted, each with the instant of its invitation (`choose`
    holds a client busy after its earliest)."""
    order = np.lexsort((at_s, clients))
    return clients[order], at_s[order]


def _held_changed(cands: Candidates, held: tuple[I64, F64], assumed: B) -> tuple[B, I64]:
    """Which candidates `held` holds busy, and the launches (in order) where that
    differs from what their choices `assumed`: those to choose for again."""
    busy = busy_among(cands, held)
    return busy, np.unique(cands.launch[busy != assumed])


def _among(launch: I64, which: I64, launches: int) -> B:
    """Whether each entry's launch is one of `which`."""
    mark = np.zeros(launches, dtype=bool)
    mark[which] = True
    out: B = mark[launch]
    return out


def tell_observer(engine: Engine, passes: list[Pass], valid: int, versions: list[int]) -> None:
    """Tell the observer each of the first `valid` launches (at model `versions`, one per
    launch), from the pass that chose for it last."""
    v = np.array(versions, dtype=np.int64)
    last = np.zeros(valid, dtype=np.int64)  # per launch that holds: its last pass
    for k, (which, _) in enumerate(passes):
        last[which[which < valid]] = k
    for k, (which, sel) in enumerate(passes):
        counted = np.zeros(len(which), dtype=bool)
        holds = which < valid
        counted[holds] = last[which[holds]] == k
        if counted.any():
            engine.observer.selected(sel.ctx, sel.pool, sel.places, v[which], counted)
