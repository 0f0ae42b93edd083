"""The fleet in virtual time: what both orchestrators share.

The engine builds the fleet and its session model, checks in and selects clients,
records settled sessions, keeps the rounds, and runs a SimPy server process, the
orchestrator: synchronous rounds (`edgetwin.emulator.sync_rounds`) or buffered asynchronous
aggregation (`edgetwin.emulator.async_rounds`). Events grow with rounds and aggregations,
never with sessions: a batch of sessions is planned at once and settled at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import simpy

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator import margins
from edgetwin.emulator.checkin import one_launch
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.fleet import Fleet, build_fleet, memory_warnings
from edgetwin.emulator.margins import Cut, Timing
from edgetwin.emulator.observer import Observer
from edgetwin.emulator.orchestrators import orchestrator_for
from edgetwin.emulator.records import Columns, SessionLog
from edgetwin.emulator.rounds import RoundRow
from edgetwin.emulator.selection.policies import Context
from edgetwin.emulator.selection.registry import policy_for
from edgetwin.emulator.selection.view import ClientView, read_only
from edgetwin.emulator.session import STALE, Outcome, Planned, SessionModel
from edgetwin.emulator.streams import Streams

if TYPE_CHECKING:
    from edgetwin.emulator.checkin_kernel import Fleet as KernelFleet

ProgressFn = Callable[[int, float], None]


@dataclass
class Results:
    scenario: Scenario
    seed: int
    fleet: Fleet
    rounds: list[RoundRow]
    sessions: Columns
    virtual_time_s: float
    stop_reason: str
    # the sessions' energy outside rounds.csv: ended but counted in no row (taken after
    # the last aggregation, or in a round whose aggregation the stop cut), and cut by the stop
    energy_j_after_last_round: float = 0.0
    energy_j_running_at_stop: float = 0.0
    warnings: tuple[str, ...] = ()  # the scenario's, then the engine's (see Engine.warnings)
    # labelled columns client_sessions.csv adds after its own: name -> (codes, labels);
    # a Flower app's run adds `kind` (what each message asked: train, evaluate, control)
    label_columns: dict[str, tuple[I64, tuple[str, ...]]] = field(default_factory=dict)


class Engine:
    """One run: the fleet, its sessions, the clock and the orchestrator."""

    def __init__(self, scenario: Scenario, base: Path, seed: int,
                 progress: ProgressFn | None = None, observer: Observer | None = None) -> None:
        self.scenario = scenario
        self.seed = seed
        self.streams = Streams(seed)
        self.fleet = build_fleet(scenario, self.streams, base)
        # what a reader should know before the run: printed, and kept in summary and report
        self.warnings: tuple[str, ...] = (*scenario.warnings, *memory_warnings(self.fleet))
        self.model = SessionModel(scenario, self.fleet, self.streams, base)
        self.env = simpy.Environment()
        # when each client's session ends, and how many it has started
        self.busy_until_s = self.fleet.state(0.0)
        # the compiled check-in's view of the fleet (`checkin_kernel.Fleet`), once asked;
        # False where it does not apply
        self.checkin_fleet: KernelFleet | Literal[False] | None = None
        self.participations = self.fleet.state(0, np.int64)
        self.policy, self.policy_params = policy_for(scenario.selection)
        self.clients = self._client_view()
        self.rounds: list[RoundRow] = []
        self.log = SessionLog(scenario.expected_sessions)  # room; it grows past it
        self.progress = progress
        self.observer = observer or Observer()
        self.stop_reason = ""
        self.energy_j_after_last_round = 0.0  # set by the orchestrator's `finish`
        self.energy_j_running_at_stop = 0.0
        self.orchestrator = orchestrator_for(self)

    def _client_view(self) -> ClientView:
        f = self.fleet
        return ClientView(
            costs=self.model.costs, cost_index=f.cost_index, group=f.group, speed=f.speed,
            local_steps=f.local_steps, examples=f.examples, downlink_mbps=f.downlink_mbps,
            uplink_mbps=f.uplink_mbps, latency_s=f.latency_s,
            capacity_j=f.battery_capacity_j,
            participations=read_only(self.participations),
            plugged_at=self.model.availability.plugged,
            abort_below_pct=self.scenario.battery.abort_below_pct)


    # --- selection ----------------------------------------------------------------------
    def select(self, k: int, rnd: int, launch: int) -> I64:
        """Round `rnd`'s check-in (draws keyed by `launch`): `k` clients, or fewer if too
        few are eligible."""
        return one_launch(self, k, rnd, launch)

    def context(self, uniforms: Callable[[I64, I64], F64]) -> Context:
        return Context(deadline_s=self.scenario.orchestration.deadline_s, clients=self.clients,
                       params=self.policy_params, uniforms=uniforms)

    def launch(self, chosen: I64, until_s: F64 | float = math.inf) -> None:
        """The chosen clients are busy until `until_s` (their sessions end), and have one
        more participation."""
        self.busy_until_s[chosen] = until_s
        self.participations[chosen] += 1

    # --- sessions -------------------------------------------------------------------------
    def record(self, p: Planned, o: Outcome, rnd: I64, cut_s: F64, cut_status: int,
               settle: bool = True, stale: npt.NDArray[np.bool_] | None = None,
               bounds: Cut | None = None) -> int:
        """Keep ended sessions' rows; with `settle`, first write them into their clients
        and free them (without, that was done as each ended). Those `stale` completed, but
        the server discarded their reports: their rows say `stale`. `bounds` say what
        their round makes of their ends (their margins, `edgetwin.emulator.margins`); without, the
        orchestrator fills those columns in later (`SessionLog.fill`). Returns the first
        row's number."""
        if settle:
            self.model.settle(p, o)
            self.busy_until_s[p.client] = o.end_s
        status = o.status if stale is None else np.where(stale, STALE, o.status)
        self.observer.recorded(p, o, cut_s, cut_status, rnd, status)
        timing = None if bounds is None else self.timing(p, status, bounds)
        first = self.log.n
        self.log.add(p, o, self.fleet.group[p.client], rnd, status, timing)
        return first

    def timing(self, p: Planned, status: I64, bounds: Cut) -> Timing:
        """The sessions' margins, completion probabilities and time intervals."""
        cv = self.model.costs.session_cv[self.fleet.cost_index[p.client]]
        return margins.timing(p, status, bounds, cv)

    def should_stop(self) -> bool:
        """The synchronous stopping rules: `stop.rounds` counts rounds run, failed ones
        included (the asynchronous rules are `async_state.StopRule`)."""
        st = self.scenario.stop
        checks = [(st.rounds is not None and len(self.rounds) >= st.rounds, "rounds"),
                  (st.virtual_time_s is not None and self.env.now >= st.virtual_time_s,
                   "virtual_time"),
                  (st.energy_j is not None and self.log.energy_j >= st.energy_j, "energy"),
                  (st.traffic_bytes is not None and self.log.traffic_bytes >= st.traffic_bytes,
                   "traffic")]
        for hit, why in checks:
            if hit:
                self.stop_reason = why
                return True
        return False

    def aggregate_s(self, received_bytes: float) -> float:
        sv = self.scenario.server
        return sv.aggregate_overhead_s + received_bytes / 1e6 / sv.aggregate_mb_per_s

    def round_done(self, row: RoundRow) -> None:
        self.rounds.append(row)
        if self.progress:
            self.progress(row.round, row.end_s)

    # --- running ------------------------------------------------------------------------------
    def run(self) -> Results:
        proc = self.env.process(self.orchestrator.serve())
        until = self.scenario.stop.virtual_time_s
        try:
            self.env.run(until=proc if until is None else self.env.any_of(
                [proc, self.env.timeout(until)]))
        except KeyboardInterrupt:  # keep what was simulated so far
            self.stop_reason = "interrupted"
        if not self.stop_reason:
            self.stop_reason = "virtual_time" if proc.is_alive else "done"
        self.orchestrator.finish(float(self.env.now))
        return self.results(float(self.env.now))

    def results(self, virtual_time_s: float) -> Results:
        """What the run did, as it stands at `virtual_time_s`."""
        return Results(scenario=self.scenario, seed=self.seed, fleet=self.fleet,
                       rounds=self.rounds, sessions=self.log.columns(),
                       virtual_time_s=virtual_time_s, stop_reason=self.stop_reason,
                       energy_j_after_last_round=self.energy_j_after_last_round,
                       energy_j_running_at_stop=self.energy_j_running_at_stop,
                       warnings=self.warnings)



