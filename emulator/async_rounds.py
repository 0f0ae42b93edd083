"""Buffered asynchronous aggregation (FedBuff-style), without a process per session.

Semantics. The server keeps `concurrency` sessions in flight. A session reports when
it ends, or `deadline_s` after it started, cut there. The server takes reports in that
order, one at a time: a completed report at most `max_staleness` model versions old
goes into the buffer, an older one is discarded. Each report taken frees a slot, and
the server invites clients for the free slots at once (`concurrency` minus the
sessions not yet taken), with the current model version. When a report fills the
buffer to `buffer_size`, the server aggregates (for `aggregate_s`), publishes the next
version, and only then invites for that report's slot; reports that arrive meanwhile
wait and are taken when it is done. Invitations at one instant are one launch: one
check-in pool, one policy call, one planned batch.

How it runs. Sessions never interact once planned, so the server can look ahead: it
takes the next reports in order (a short loop over numbers), and makes the launches
they owe as one batch of launches; the earliest new session to report bounds what
holds, and what comes after it is looked at again. Randomness is keyed by launch
number, so how far it looks ahead changes nothing. Each look-ahead is one timeout.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.async_launches import select_batch, tell_observer
from edgetwin.emulator.async_state import Launch, Scan, ServerState, StopRule
from edgetwin.emulator.entries import join, take
from edgetwin.emulator.margins import Cut
from edgetwin.emulator.rounds import IDLE_RETRY_S, MAX_IDLE_S, RoundRow
from edgetwin.emulator.session import (
    CANCELLED,
    COMPLETED,
    DEADLINE,
    STALE,
    Outcome,
    Planned,
)

if TYPE_CHECKING:
    from edgetwin.emulator.engine import Engine

LOOK_AHEAD = 16  # reports looked at first; adapts to how many held last time


class AsyncRounds:
    """The buffered asynchronous server."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.orchestration = engine.scenario.orchestration
        self.settings = self.orchestration.async_
        self.state = ServerState(owed=[0.0])
        self.next_seq = 0
        self.look_ahead = LOOK_AHEAD
        until = engine.scenario.stop.virtual_time_s
        self.until_s = math.inf if until is None else until
        # the sessions in flight (launched, their reports not yet taken), one batch
        self.flight: Planned | None = None
        self.outcomes: Outcome | None = None  # theirs, as each would end by itself
        self.report_s: F64 = np.zeros(0)
        self.started_version: I64 = np.zeros(0, dtype=np.int64)  # each session's model version
        self.written = np.zeros(0, dtype=bool)  # the session's end written to its client
        # sessions recorded before the aggregations that decide whether they could have
        # come too stale: (first row, sessions, status, model version), timed at the end
        self.untimed: list[tuple[int, Planned, I64, I64]] = []

    # --- the server ------------------------------------------------------------------------
    def serve(self) -> Generator[Any, Any, None]:
        engine, env = self.engine, self.engine.env
        idle_since: float | None = None
        while not self.state.stop_reason:
            if not len(self.report_s) and not self.state.owed:
                idle_since = float(env.now) if idle_since is None else idle_since
                if env.now - idle_since >= MAX_IDLE_S:
                    engine.stop_reason = "no eligible clients for a week of virtual time"
                    return
                if env.now + IDLE_RETRY_S >= self.until_s:
                    break
                yield env.timeout(IDLE_RETRY_S)
                self.state.owed = [float(env.now)]
                continue
            end_s = self.step()
            if end_s is None:  # nothing more before the stop time
                break
            if len(self.report_s):
                idle_since = None
            yield env.timeout(max(end_s - float(env.now), 0.0))
        if self.state.stop_reason:
            engine.stop_reason = self.state.stop_reason
        elif math.isfinite(self.until_s):
            engine.stop_reason = "virtual_time"
            yield env.timeout(max(self.until_s - float(env.now), 0.0))

    def step(self) -> float | None:
        """Look ahead, keep what holds, and say up to when."""
        order = np.lexsort((self.flight.key, self.report_s)) if self.flight is not None \
            else np.zeros(0, dtype=np.int64)
        ahead = self.scan(self.state.copy(), order, self.look_ahead, math.inf, None)
        if ahead.taken == 0 and not ahead.launches:
            return None
        self._write_ended(order, max([ahead.last_s] + [x.at_s for x in ahead.launches]))
        new, valid, first_report_s = self._launch(ahead.launches)
        limit = int(np.searchsorted(self.report_s[order], first_report_s, side="right"))
        # launches after the last that holds stay owed (and are counted again next time)
        bound = math.nextafter(ahead.launches[valid - 1].at_s, math.inf) \
            if valid < len(ahead.launches) else math.inf
        actual = np.bincount(new[1], minlength=valid) if new is not None else np.zeros(0)
        done = self.scan(self.state, order, min(limit, ahead.taken), bound,
                         [int(x) for x in actual[:valid]])
        # next time: half as many again as held this time (what is looked at beyond what
        # holds is selected and planned in vain: twice as many cost a fifth more here),
        # or twice as far while all held
        self.look_ahead = max(8, done.taken + done.taken // 2) if done.taken < ahead.taken \
            else min(2 * self.look_ahead, 4 * self.settings.concurrency)
        assert len(done.launches) == valid, "the launches that hold are those made again"
        for row in done.rows:
            self.engine.round_done(row)
        self._take(order[: done.taken], np.array(done.stale, dtype=np.int64))
        if new is not None:
            self._start(*new, done.launches)
        return max([done.last_s] + [x.at_s for x in done.launches])

    def scan(self, st: ServerState, order: I64, most: int, launch_bound: float,
             actual: list[int] | None) -> Scan:
        """Step the server through the next `most` reports (in `order`); launches at
        `launch_bound` or later stay owed. `actual` (per launch, in order) is how many
        each got; without it each is taken to fill its slots."""
        a = self.settings
        out = Scan(last_s=float(self.engine.env.now))
        in_flight = len(self.report_s)

        def launch_before(t: float) -> None:
            nonlocal in_flight
            while st.owed and st.owed[0] < t and st.owed[0] < launch_bound:
                at = st.owed.pop(0)
                while st.owed and st.owed[0] == at:
                    st.owed.pop(0)
                count = a.concurrency - in_flight
                if count <= 0:
                    continue
                got = count if actual is None else actual[len(out.launches)]
                out.launches.append(Launch(at, count, st.version))
                st.window_selected += got
                in_flight += got
                if at > out.last_s:
                    out.last_s = at

        horizon = min(launch_bound, self.until_s)
        ahead = order[: most]
        # the reports' numbers as Python's, read once: the loop below is Python's
        report_s, version = self.report_s[ahead].tolist(), self.started_version[ahead].tolist()
        o = self.outcomes
        completed: list[bool] = []
        energy_j: list[float] = []
        up_bytes: list[float] = []
        down_bytes: list[float] = []
        if o is not None:  # sessions in flight: what each reports, as it would end by itself
            completed = (o.status[ahead] == COMPLETED).tolist()
            energy_j = o.energy_j[ahead].tolist()
            up_bytes = np.round(o.upload_bytes[ahead]).tolist()
            down_bytes = np.round(o.download_bytes[ahead]).tolist()
        stops = StopRule(self.engine.scenario.stop, a, len(self.engine.rounds))
        for j, i in enumerate(ahead.tolist()):
            now = st.free_s if st.free_s > report_s[j] else report_s[j]
            if now >= horizon:  # launches before it are made; it waits for the next look
                launch_before(horizon)
                break
            launch_before(now)
            age = st.version - version[j]
            fresh = completed[j] and age <= a.max_staleness
            fills = fresh and len(st.staleness) + 1 >= a.buffer_size
            if fills:  # launches owed at this instant come before the aggregation
                launch_before(math.nextafter(now, math.inf))
            in_flight -= 1
            out.taken += 1
            if now > out.last_s:
                out.last_s = now
            st.since_aggregation += 1
            st.window_energy_j += energy_j[j]
            st.window_up_bytes += up_bytes[j]
            st.window_down_bytes += down_bytes[j]
            st.taken_energy_j += energy_j[j]
            st.taken_traffic_bytes += up_bytes[j] + down_bytes[j]
            if fresh:
                st.staleness.append(age)
            elif completed[j]:
                st.discarded += 1
                out.stale.append(i)
            if fills:
                end = now + self.engine.aggregate_s(st.window_up_bytes)
                if end >= self.until_s:  # the stop comes first: busy aggregating till then
                    st.free_s = end
                    break
                out.rows.append(self._row(st, now, end))
                out.last_s = end
                if stops.reached(st, len(out.rows)):
                    break
                bisect.insort(st.owed, end)
            else:
                bisect.insort(st.owed, now)
            if stops.reached(st, len(out.rows)):
                break
        else:
            nxt = out.taken
            if nxt < len(order):
                launch_before(min(max(float(self.report_s[order[nxt]]), st.free_s), horizon))
            else:
                launch_before(horizon)
        return out

    def _row(self, st: ServerState, closed_s: float, end_s: float) -> RoundRow:
        row = RoundRow(
            round=st.version, start_s=st.window_start_s, closed_s=closed_s, end_s=end_s,
            selected=st.window_selected, reported=len(st.staleness), aggregated=True,
            energy_j=st.window_energy_j, upload_bytes=st.window_up_bytes,
            download_bytes=st.window_down_bytes,
            # whole numbers: their sum is exact, so this is numpy's mean, without its cost
            mean_staleness=sum(st.staleness) / len(st.staleness),
            discarded_stale=st.discarded)
        st.version += 1
        st.free_s = st.window_start_s = end_s
        st.staleness, st.discarded, st.since_aggregation = [], 0, 0
        st.window_energy_j = st.window_up_bytes = st.window_down_bytes = 0.0
        st.window_selected = 0
        return row

    # --- launches --------------------------------------------------------------------------
    def _launch(self, launches: list[Launch]) -> tuple[tuple[Planned, I64] | None, int, float]:
        """Select and plan the launches at once: the planned sessions and each one's launch,
        how many launches hold (up to the first that a new session's report or a short
        launch makes uncertain, or one not yet settled) and the earliest report of the
        sessions of those that hold."""
        if not launches:
            return None, 0, math.inf
        engine = self.engine
        at = np.array([x.at_s for x in launches])
        count = np.array([x.count for x in launches], dtype=np.int64)
        ids = self.state.launches + np.arange(len(launches), dtype=np.int64)
        clients, launch, certain, passes = select_batch(engine, at, count, ids)
        start = at[launch]
        seq = self.next_seq + np.arange(len(clients), dtype=np.int64)
        p = engine.model.plan(clients, start, seq)
        report = self._report_s(p)
        got = np.bincount(launch, minlength=len(launches))
        first = np.full(len(launches), math.inf)
        np.minimum.at(first, launch, report)
        valid, earliest = 0, math.inf
        for j in range(certain):
            if at[j] >= earliest:
                break
            valid = j + 1
            earliest = min(earliest, first[j])
            if got[j] < count[j]:
                break
        keep = launch < valid
        if engine.observer.selections:
            tell_observer(engine, passes, valid, [x.version for x in launches])
        return (take(p, keep), launch[keep]), valid, earliest

    def _report_s(self, p: Planned) -> F64:
        """When each session reports: its own end, or its deadline (its `end_s`)."""
        return np.minimum(p.stop_s, p.start_s + self.orchestration.deadline_s)

    def _start(self, p: Planned, launch: I64, made: list[Launch]) -> None:
        """The sessions of the launches that hold are in flight."""
        engine = self.engine
        report = self._report_s(p)
        engine.launch(p.client, report)
        o = self._outcome(p)
        versions = np.array([x.version for x in made], dtype=np.int64)
        self.flight = p if self.flight is None else join([self.flight, p])
        self.outcomes = o if self.outcomes is None else join([self.outcomes, o])
        self.report_s = np.concatenate([self.report_s, report])
        self.started_version = np.concatenate([self.started_version, versions[launch]])
        self.written = np.concatenate([self.written, np.zeros(len(report), dtype=bool)])
        self.next_seq += len(report)
        self.state.launches += len(made)

    # --- reports ---------------------------------------------------------------------------
    def _write_ended(self, order: I64, t_s: float) -> None:
        """Write to their clients the sessions that have ended by `t_s` (each client's charge
        and temperature as its session left them), so that launches until then see them;
        their reports are recorded when the server takes them."""
        self._write(order[self.report_s[order] <= t_s])

    def _write(self, idx: I64) -> None:
        """Write the sessions `idx` not yet written to their clients (their clients stay
        busy until then, as their launch set)."""
        due = idx[~self.written[idx]]
        if len(due):
            p = take(self._planned(), due)
            self.engine.model.settle(p, take(self._outcomes(), due))
            self.written[due] = True

    def _planned(self) -> Planned:
        assert self.flight is not None, "sessions in flight"
        return self.flight

    def _outcomes(self) -> Outcome:
        assert self.outcomes is not None, "sessions in flight"
        return self.outcomes

    def _outcome(self, p: Planned) -> Outcome:
        return self.engine.model.account(p, p.start_s + self.orchestration.deadline_s, DEADLINE)

    def _record(self, idx: I64, stale: I64 | None = None) -> float:
        """Record sessions (in order) as they ended, those among `stale` as such: those not
        yet written to their clients are written now; the others were, and their clients
        may be in newer sessions. Their energy, J."""
        self._write(idx)
        p = take(self._planned(), idx)
        cut = p.start_s + self.orchestration.deadline_s
        o = take(self._outcomes(), idx)
        discarded = None
        if stale is not None:  # (isin's own cost spared where none is stale)
            discarded = np.isin(idx, stale) if len(stale) else np.zeros(len(idx), dtype=bool)
        first = self.engine.record(p, o, self.started_version[idx], cut, DEADLINE,
                                   settle=False, stale=discarded)
        status = o.status if discarded is None else np.where(discarded, STALE, o.status)
        self.untimed.append((first, p, status, self.started_version[idx]))
        return float(o.energy_j.sum())

    def _time_recorded(self) -> None:
        """The margins of the sessions recorded so far: each completes by its deadline and
        before the aggregation after which its report is too stale (the one that made the
        model `max_staleness` versions newer than the session's)."""
        closes = np.array([row.closed_s for row in self.engine.rounds] + [np.inf])
        if self.untimed:
            first = np.concatenate([f + np.arange(len(st), dtype=np.int64)
                                    for f, _, st, _ in self.untimed])
            p = join([x[1] for x in self.untimed])
            status = np.concatenate([x[2] for x in self.untimed])
            version = np.concatenate([x[3] for x in self.untimed])
            which = np.minimum(version + self.settings.max_staleness, len(closes) - 1)
            cut = Cut(at_s=p.start_s + self.orchestration.deadline_s,
                      status=np.full(len(status), DEADLINE, dtype=np.int64),
                      stale_s=closes[which])
            self.engine.log.fill(first, self.engine.timing(p, status, cut))
        self.untimed = []

    def _take(self, idx: I64, stale: I64) -> None:
        """The server has taken these reports (in order), `stale` among them discarded:
        recorded, they leave the flight."""
        if not len(idx):
            return
        self._record(idx, stale)
        keep = np.ones(len(self.report_s), dtype=bool)
        keep[idx] = False
        self._take_out(keep)

    def _take_out(self, keep: np.ndarray[Any, np.dtype[np.bool_]]) -> None:
        """Only the sessions `keep` stay in flight."""
        self.flight = take(self._planned(), keep)
        self.outcomes = take(self._outcomes(), keep)
        for name in ("report_s", "started_version", "written"):
            setattr(self, name, getattr(self, name)[keep])

    def finish(self, now_s: float) -> None:
        """At the stop: sessions that had ended by now are recorded as they ended (their
        reports not taken); those still running are cancelled now. The energy of the reports
        taken since the last aggregation and of those not taken is after the last round."""
        self.engine.energy_j_after_last_round = self.state.window_energy_j
        if self.flight is None or not len(self.report_s):
            self._time_recorded()
            return
        order = np.lexsort((self.flight.key, self.report_s))
        ended = order[self.report_s[order] <= now_s]
        running = order[self.report_s[order] > now_s]
        if len(ended):
            self.engine.energy_j_after_last_round += self._record(ended)
        if len(running):
            running = running[np.argsort(self.flight.key[running], kind="stable")]
            p = take(self.flight, running)
            cut = np.full(len(running), now_s)
            o = self.engine.model.account(p, cut, CANCELLED)
            self.engine.record(p, o, self.started_version[running], cut, CANCELLED,
                               bounds=Cut(at_s=cut, status=np.full(len(cut), CANCELLED,
                                                                   dtype=np.int64)))
            self.engine.energy_j_running_at_stop = float(o.energy_j.sum())
        self._take_out(np.zeros(len(self.report_s), dtype=bool))
        self._time_recorded()

