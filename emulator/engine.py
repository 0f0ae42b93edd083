"""The fleet in virtual time: a SimPy server process runs rounds, each selected client
runs a session process, and orchestration decides who is asked and what is aggregated.

Synchronous rounds select `clients_per_round x (1 + overcommit)` clients and close at
the first of: `clients_per_round` reports in (unless `close_at_target` is off), every
session ended, the deadline. Sessions still running then are cut: `deadline` if the
deadline closed the round, `cancelled` if the target did. Buffered asynchronous
aggregation keeps `concurrency` sessions in flight and aggregates every `buffer_size`
fresh-enough updates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

from emulator.fleet import Fleet, build_fleet
from emulator.observer import Observer
from emulator.policies import POLICIES, Context
from emulator.scenario import Scenario
from emulator.session import CANCELLED, COMPLETED, DEADLINE, Outcome, Planned, SessionModel
from emulator.streams import Streams

I64 = npt.NDArray[np.int64]
ProgressFn = Callable[[int, float], None]
IDLE_RETRY_S = 600.0  # with nobody eligible, look again after this long
MAX_IDLE_S = 7 * 86400.0  # and give up after a week of nobody
NO_PROGRESS_BUFFERS = 50  # async: give up after this many buffers' worth of failures


@dataclass
class RoundRow:
    round: int
    start_s: float
    closed_s: float  # when the server stopped waiting for reports
    end_s: float  # after aggregation
    selected: int
    reported: int
    aggregated: bool
    energy_j: float
    upload_bytes: float
    download_bytes: float
    mean_staleness: float = 0.0
    discarded_stale: int = 0


@dataclass
class Results:
    scenario: Scenario
    seed: int
    fleet: Fleet
    rounds: list[RoundRow]
    sessions: dict[str, np.ndarray[Any, Any]]
    virtual_time_s: float
    stop_reason: str


@dataclass
class _RoundState:
    target: int
    event: simpy.Event
    reports: int = 0
    closed: bool = False


@dataclass
class _Tally:
    energy_j: float = 0.0
    traffic_bytes: float = 0.0
    parts: list[dict[str, np.ndarray[Any, Any]]] = field(default_factory=list)


class Engine:
    def __init__(self, scenario: Scenario, base: Path, seed: int,
                 progress: ProgressFn | None = None, observer: Observer | None = None) -> None:
        self.s = scenario
        self.seed = seed
        self.streams = Streams(seed)
        self.fleet = build_fleet(scenario, self.streams, base)
        self.model = SessionModel(scenario, self.fleet, self.streams, base)
        self.env = simpy.Environment()
        self.busy = np.zeros(self.fleet.n, dtype=bool)
        self.participations = np.zeros(self.fleet.n, dtype=np.int64)
        self.policy = POLICIES[scenario.selection.policy]
        self.selection_rng = self.streams.generator("selection")
        self.pool_rng = self.streams.generator("checkin")
        self.in_flight: dict[int, tuple[Planned, int]] = {}
        self.rounds: list[RoundRow] = []
        self.tally = _Tally()
        self.progress = progress
        self.observer = observer or Observer()
        self.stop_reason = ""
        self.session_seq = 0

    # --- selection ----------------------------------------------------------------------
    def select(self, k: int, rnd: int) -> I64:
        """Check in a uniform pool of idle clients, keep the eligible, let the policy rank."""
        n = self.fleet.n
        now = float(self.env.now)
        want = math.ceil(self.s.selection.pool_factor * k)
        found: list[I64] = []
        have = 0
        for _ in range(4):  # a few draws if availability is thin
            size = min(n, want)
            pool = np.sort(self.pool_rng.choice(n, size, replace=False))
            pool = pool[~self.busy[pool]]
            if found:
                pool = np.setdiff1d(pool, np.concatenate(found), assume_unique=True)
            self.model.bring_up_to_date(pool, np.full(pool.shape, now))
            ok = pool[self.model.eligible(pool, now)]
            found.append(ok)
            have += len(ok)
            if have >= want or size == n:
                break
        candidates = np.sort(np.concatenate(found))
        ctx = Context(now_s=now, deadline_s=self.s.orchestration.deadline_s, model=self.model,
                      participations=self.participations, rng=self.selection_rng,
                      cfg=self.s.selection)
        state = self.selection_rng.bit_generator.state
        chosen = self.policy(ctx, candidates, k).astype(np.int64)
        self.observer.selected(ctx, candidates, k, chosen, state, rnd)
        return chosen

    # --- sessions -------------------------------------------------------------------------
    def _session(self, p: Planned, i: int, state: _RoundState) -> Generator[Any, Any, None]:
        """One client's session as a process: it reports if it completes before the cut."""
        try:
            yield self.env.timeout(max(float(p.stop_s[i]) - self.env.now, 0.0))
        except simpy.Interrupt:
            return
        if int(p.stop_cause[i]) == COMPLETED and not state.closed:
            state.reports += 1
            if state.reports >= state.target and not state.event.triggered:
                state.event.succeed()

    def _record(self, p: Planned, o: Outcome, rnd: I64, cut_s: np.ndarray[Any, Any],
                cut_status: int) -> None:
        self.observer.recorded(p, o, cut_s, cut_status, rnd)
        f = self.fleet
        part = {"client": p.client, "group": f.group[p.client], "round": rnd,
                "start_s": p.start_s, "end_s": o.end_s, "download_s": o.download_s,
                "compute_s": o.compute_s, "upload_s": o.upload_s, "steps": o.steps,
                "energy_j": o.energy_j, "peak_memory_mb": p.peak_memory_mb,
                "upload_bytes": np.round(o.upload_bytes), "download_bytes":
                np.round(o.download_bytes), "status": o.status}
        self.tally.parts.append(part)
        self.tally.energy_j += float(o.energy_j.sum())
        self.tally.traffic_bytes += float(part["upload_bytes"].sum() +
                                          part["download_bytes"].sum())

    def _should_stop(self) -> bool:
        """Synchronous `stop.rounds` counts rounds run, failed ones included; asynchronous
        ones count aggregations."""
        st = self.s.stop
        done = len(self.rounds)
        checks = [(st.rounds is not None and done >= st.rounds, "rounds"),
                  (st.virtual_time_s is not None and self.env.now >= st.virtual_time_s,
                   "virtual_time"),
                  (st.energy_j is not None and self.tally.energy_j >= st.energy_j, "energy"),
                  (st.traffic_bytes is not None and self.tally.traffic_bytes >= st.traffic_bytes,
                   "traffic")]
        for hit, why in checks:
            if hit:
                self.stop_reason = why
                return True
        return False

    def _aggregate_s(self, received_bytes: float) -> float:
        sv = self.s.server
        return sv.aggregate_overhead_s + received_bytes / 1e6 / sv.aggregate_mb_per_s

    # --- synchronous rounds -----------------------------------------------------------------
    def _sync_server(self) -> Generator[Any, Any, None]:
        o = self.s.orchestration
        idle_since: float | None = None
        rnd = 0
        while not self._should_stop():
            start = float(self.env.now)
            chosen = self.select(math.ceil(o.clients_per_round * (1 + o.overcommit)), rnd)
            if len(chosen) == 0:
                idle_since = start if idle_since is None else idle_since
                if start - idle_since >= MAX_IDLE_S:
                    self.stop_reason = "no eligible clients for a week of virtual time"
                    return
                yield self.env.timeout(IDLE_RETRY_S)
                continue
            idle_since = None
            planned = self.model.plan(chosen, np.full(len(chosen), start), rnd)
            self.busy[chosen] = True
            self.participations[chosen] += 1
            state = _RoundState(target=min(o.clients_per_round, len(chosen)),
                                event=self.env.event())
            procs = [self.env.process(self._session(planned, i, state))
                     for i in range(len(chosen))]
            deadline = self.env.timeout(o.deadline_s)
            everyone = self.env.all_of(procs)
            yield self.env.any_of([state.event, everyone, deadline] if o.close_at_target
                                  else [everyone, deadline])
            state.closed = True
            close = float(self.env.now)
            # start + deadline - start need not equal deadline in floating point
            cut = DEADLINE if close - start >= o.deadline_s - 1e-6 else CANCELLED
            for proc in procs:
                if proc.is_alive:
                    proc.interrupt()
            # the moment the round stopped waiting: where every session had ended by
            # itself, the deadline it would still have waited for
            closed_at_target = o.close_at_target and state.event.triggered
            waited = close if cut == DEADLINE or closed_at_target else start + o.deadline_s
            cut_s = np.full(len(chosen), waited)
            cut = DEADLINE if waited != close else cut
            outcome = self.model.account(planned, cut_s, cut)
            self.model.settle(planned, outcome)
            self.busy[chosen] = False
            self._record(planned, outcome, np.full(len(chosen), rnd), cut_s, cut)
            reported = int(np.sum(outcome.status == COMPLETED))
            up = float(np.round(outcome.upload_bytes).sum())
            aggregated = reported >= o.min_reports
            if aggregated:
                yield self.env.timeout(self._aggregate_s(up))
            self.rounds.append(RoundRow(
                round=rnd, start_s=start, closed_s=close, end_s=float(self.env.now),
                selected=len(chosen),
                reported=reported, aggregated=aggregated, energy_j=float(outcome.energy_j.sum()),
                upload_bytes=up, download_bytes=float(np.round(outcome.download_bytes).sum())))
            self.observer.round_closed(self, self.rounds[-1], planned, outcome, cut_s, cut)
            if self.progress:
                self.progress(rnd, float(self.env.now))
            rnd += 1

    # --- buffered asynchronous aggregation -------------------------------------------------
    def _async_server(self) -> Generator[Any, Any, None]:
        o = self.s.orchestration
        a = o.async_
        reports: simpy.Store = simpy.Store(self.env)
        version = 0
        in_flight = 0
        buffer: list[int] = []
        discarded = 0
        window_start = 0.0
        window_energy = window_up = window_down = 0.0
        window_selected = 0

        def launch(count: int) -> int:
            nonlocal window_selected
            chosen = self.select(count, version)
            if len(chosen) == 0:
                return 0
            now = float(self.env.now)
            seq = np.arange(self.session_seq, self.session_seq + len(chosen))
            self.session_seq += len(chosen)
            for j, c in enumerate(chosen):
                self.env.process(self._async_session(int(c), now, int(seq[j]), version,
                                                     reports))
            self.busy[chosen] = True
            self.participations[chosen] += 1
            window_selected += len(chosen)
            return len(chosen)

        in_flight += launch(a.concurrency)
        idle_since: float | None = None
        since_aggregation = 0
        while not self._should_stop():
            if since_aggregation > NO_PROGRESS_BUFFERS * a.buffer_size + a.concurrency:
                self.stop_reason = "no progress: sessions keep failing, nothing to aggregate"
                return
            if in_flight == 0:
                idle_since = float(self.env.now) if idle_since is None else idle_since
                if self.env.now - idle_since >= MAX_IDLE_S:
                    self.stop_reason = "no eligible clients for a week of virtual time"
                    return
                yield self.env.timeout(IDLE_RETRY_S)
                in_flight += launch(a.concurrency)
                continue
            idle_since = None
            ok, started_version, energy, up, down = yield reports.get()
            in_flight -= 1
            since_aggregation += 1
            window_energy += energy
            window_up += up
            window_down += down
            if ok:
                if version - started_version > a.max_staleness:
                    discarded += 1
                else:
                    buffer.append(version - started_version)
            if len(buffer) >= a.buffer_size:
                closed = float(self.env.now)
                yield self.env.timeout(self._aggregate_s(window_up))
                self.rounds.append(RoundRow(
                    round=version, start_s=window_start, closed_s=closed, end_s=float(self.env.now),
                    selected=window_selected, reported=len(buffer), aggregated=True,
                    energy_j=window_energy, upload_bytes=window_up, download_bytes=window_down,
                    mean_staleness=float(np.mean(buffer)), discarded_stale=discarded))
                if self.progress:
                    self.progress(version, float(self.env.now))
                version += 1
                since_aggregation = 0
                buffer, discarded = [], 0
                window_start = float(self.env.now)
                window_energy = window_up = window_down = 0.0
                window_selected = 0
            in_flight += launch(a.concurrency - in_flight)

    def _async_session(self, c: int, start: float, seq: int, version: int,
                       reports: simpy.Store) -> Generator[Any, Any, None]:
        cs = np.array([c], dtype=np.int64)
        p = self.model.plan(cs, np.array([start]), seq)
        self.in_flight[seq] = (p, version)
        limit = start + self.s.orchestration.deadline_s
        yield self.env.timeout(max(min(float(p.stop_s[0]), limit) - start, 0.0))
        del self.in_flight[seq]
        o = self.model.account(p, np.array([limit]), DEADLINE)
        self.model.settle(p, o)
        self.busy[c] = False
        self._record(p, o, np.array([version]), np.array([limit]), DEADLINE)
        up, down = float(np.round(o.upload_bytes[0])), float(np.round(o.download_bytes[0]))
        yield reports.put((int(o.status[0]) == COMPLETED, version, float(o.energy_j[0]), up,
                           down))

    # --- running ------------------------------------------------------------------------------
    def run(self) -> Results:
        server = self._sync_server if self.s.orchestration.mode == "sync" else \
            self._async_server
        proc = self.env.process(server())
        until = self.s.stop.virtual_time_s
        try:
            self.env.run(until=proc if until is None else self.env.any_of(
                [proc, self.env.timeout(until)]))
        except KeyboardInterrupt:  # keep what was simulated so far
            self.stop_reason = "interrupted"
        if not self.stop_reason:
            self.stop_reason = "virtual_time" if proc.is_alive else "done"
        now = float(self.env.now)
        for seq in sorted(self.in_flight):  # asynchronous sessions still running at the stop
            p, version = self.in_flight[seq]
            o = self.model.account(p, np.array([now]), CANCELLED)
            self.model.settle(p, o)
            self._record(p, o, np.array([version]), np.array([now]), CANCELLED)
        self.in_flight.clear()
        return Results(scenario=self.s, seed=self.seed, fleet=self.fleet, rounds=self.rounds,
                       sessions=self._sessions(), virtual_time_s=float(self.env.now),
                       stop_reason=self.stop_reason)

    def _sessions(self) -> dict[str, np.ndarray[Any, Any]]:
        parts = self.tally.parts
        if not parts:
            return {}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
