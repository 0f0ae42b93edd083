"""Synchronous rounds: select, plan every session of the round at once, wait once.

A round selects `clients_per_round x (1 + overcommit)` clients and closes at the
first of: `clients_per_round` reports in (unless `close_at_target` is off), every
session ended, the deadline. Sessions never interact once planned, so that moment
is known when the round starts: the round is one timeout to it (and one for the
aggregation), however many clients it asks. Sessions still running then are cut:
`deadline` if the deadline closed the round, `cancelled` if the target did.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.config import OrchestrationConfig
from edgetwin.emulator.margins import Cut
from edgetwin.emulator.rounds import IDLE_RETRY_S, MAX_IDLE_S, RoundRow
from edgetwin.emulator.session import CANCELLED, COMPLETED, DEADLINE, Planned

if TYPE_CHECKING:
    from edgetwin.emulator.engine import Engine


@dataclass(frozen=True)
class RoundClose:
    """When a round stopped waiting and what that made of the sessions still running."""

    delay_s: float  # after its start: when the server stopped waiting
    cut_s: float  # the moment the sessions still running are cut at
    cut_status: int  # deadline, or cancelled where the target closed it


def close_round(p: Planned, start: float, orch: OrchestrationConfig, target: int
                ) -> RoundClose:
    """The round's close: the first of the deadline, the `target`-th completed session's
    end and the last session's end (each timed as `start + delay`, as a clock would)."""
    own: F64 = np.maximum(p.stop_s - start, 0.0)
    delay = min(orch.deadline_s, float(own.max()))
    at_target_s = kth_stop_s = math.inf
    if orch.close_at_target:
        done = p.stop_cause == COMPLETED
        if int(done.sum()) >= target:
            kth = float(np.partition(own[done], target - 1)[target - 1])
            kth_stop_s = float(np.partition(p.stop_s[done], target - 1)[target - 1])
            delay = min(delay, kth)
            at_target_s = start + kth
    at_target = at_target_s <= start + delay
    close = start + delay
    # start + deadline - start need not equal deadline in floating point
    cut = DEADLINE if close - start >= orch.deadline_s - 1e-6 else CANCELLED
    # the moment the round stopped waiting: where every session had ended by itself,
    # the deadline it would still have waited for
    waited = close if cut == DEADLINE or at_target else start + orch.deadline_s
    cut = DEADLINE if waited != close else cut
    if at_target and cut == CANCELLED:
        # the report that closed the round is in: start + (its end - start) can fall a
        # hair before its end in floating point, which would cut it
        waited = max(waited, kth_stop_s)
    return RoundClose(delay, waited, cut)


def session_cuts(p: Planned, start: float, orch: OrchestrationConfig, target: int) -> Cut:
    """What the round makes of each session's end with that one session changed and the
    others as they ran: it completes by the deadline, and before the report that would
    close the round without it (the `target`-th completion among the others)."""
    deadline = start + orch.deadline_s
    n = len(p.client)
    without = np.full(n, np.inf)
    if orch.close_at_target:
        done = p.stop_cause == COMPLETED
        ends = np.where(done, p.stop_s, np.inf)
        order = np.argsort(ends, kind="stable")
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        padded = np.concatenate([ends[order], [np.inf]])
        # the target-th among the others: one further along for a session among the first
        without = padded[np.where(done & (rank < target), target, target - 1)]
    at = np.minimum(deadline, without)
    status: I64 = np.where(without < deadline, CANCELLED, DEADLINE).astype(np.int64)
    return Cut(at_s=at, status=status)


class SyncRounds:
    """The synchronous server."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.orchestration = engine.scenario.orchestration
        self.launches = 0  # check-ins so far (a retry after nobody was eligible counts)
        self.open: tuple[Planned, int] | None = None  # a round's sessions, not yet settled
        self.unrowed_energy_j = 0.0  # of a round's sessions recorded, its row not yet kept

    def serve(self) -> Generator[Any, Any, None]:
        engine, env, orch = self.engine, self.engine.env, self.orchestration
        idle_since: float | None = None
        rnd = 0
        while not engine.should_stop():
            start = float(env.now)
            chosen = engine.select(math.ceil(orch.clients_per_round * (1 + orch.overcommit)),
                                   rnd, self.launches)
            self.launches += 1
            if len(chosen) == 0:
                idle_since = start if idle_since is None else idle_since
                if start - idle_since >= MAX_IDLE_S:
                    engine.stop_reason = "no eligible clients for a week of virtual time"
                    return
                yield env.timeout(IDLE_RETRY_S)
                continue
            idle_since = None
            starts = np.full(len(chosen), start)
            planned = engine.model.plan(chosen, starts, rnd)
            engine.launch(chosen)
            self.open = planned, rnd
            target = min(orch.clients_per_round, len(chosen))
            closed = close_round(planned, start, orch, target)
            yield env.timeout(closed.delay_s)
            close = float(env.now)
            cut, cut_s = closed.cut_status, np.full(len(chosen), closed.cut_s)
            outcome = engine.model.account(planned, cut_s, cut)
            rounds = np.full(len(chosen), rnd)
            engine.record(planned, outcome, rounds, cut_s, cut,
                          bounds=session_cuts(planned, start, orch, target))
            self.open = None
            self.unrowed_energy_j = float(outcome.energy_j.sum())
            reported = int(np.sum(outcome.status == COMPLETED))
            up = float(np.round(outcome.upload_bytes).sum())
            aggregated = reported >= orch.min_reports
            if aggregated:
                yield env.timeout(engine.aggregate_s(up))
            row = RoundRow(
                round=rnd, start_s=start, closed_s=close, end_s=float(env.now),
                selected=len(chosen), reported=reported, aggregated=aggregated,
                energy_j=float(outcome.energy_j.sum()), upload_bytes=up,
                download_bytes=float(np.round(outcome.download_bytes).sum()))
            engine.round_done(row)
            self.unrowed_energy_j = 0.0
            engine.observer.round_closed(engine, row, planned, outcome, cut_s, cut)
            rnd += 1

    def finish(self, now_s: float) -> None:
        """A round the stop cut short: its sessions still running are cancelled now and
        recorded; rounds.csv keeps finished rounds only (nor one whose aggregation the
        stop interrupted: its sessions' energy is after the last round)."""
        self.engine.energy_j_after_last_round = self.unrowed_energy_j
        if self.open is None:
            return
        planned, rnd = self.open
        cut_s = np.full(len(planned.client), now_s)
        outcome = self.engine.model.account(planned, cut_s, CANCELLED)
        self.engine.record(planned, outcome, np.full(len(planned.client), rnd), cut_s,
                           CANCELLED, bounds=Cut(at_s=cut_s, status=np.full(
                               len(cut_s), CANCELLED, dtype=np.int64)))
        cut = outcome.status == CANCELLED  # the others had ended by themselves
        self.engine.energy_j_running_at_stop = float(outcome.energy_j[cut].sum())
        self.engine.energy_j_after_last_round += float(outcome.energy_j[~cut].sum())
        self.open = None
