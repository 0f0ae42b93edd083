"""Whether the emulator's decisions hold on hardware: each replayed session's outcome
derived again as the emulator derives it, with what the devices measured.

Synchronous rounds: the session's whole round is planned again, every session of it
at its group's measured factor (a replayed session's measured compute over the
compute the run gave it, the median over the group's replayed sessions) and each
replayed session at its own measurements; the round's close is recomputed (its
target, its deadline, its last report), then every session is decided. A uniform
slowdown of every session keeps a target-closed round's order, and so its decisions.
Asynchronous aggregation: the session planned again with its measurements, decided
against its deadline; a completed report comes too stale where it comes after the
aggregation that made the model `max_staleness` versions newer, that aggregation
later by the fleet's factor (every report before it came that much later too).
The scenario's link model is kept: a group's link describes a population, not the
cable to the test device.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgetwin.emulator.config import OrchestrationConfig
from edgetwin.emulator.engine import Results
from edgetwin.emulator.session import (
    COMPLETED,
    DEADLINE,
    STALE,
    STATUSES,
    SessionCosts,
    SessionModel,
)
from edgetwin.emulator.sync_rounds import close_round
from edgetwin.hil.replay.sessions import Batch, RunSession


def measured_compute_s(m: dict[str, Any]) -> float:
    """A replayed session's compute as measured: its set-up and every step."""
    return float(m.get("load_s") or 0.0) + float(sum(m["step_time_s"]))


def emulated_compute_s(s: RunSession) -> float:
    """The compute the run gave the session, on the nominal unit of its group (speed 1):
    its set-up and its steps at its draw of the profile's variability."""
    c = s.cost
    return (c.setup_s + s.local_steps * c.step_s) * s.compute_factor


@dataclass(frozen=True)
class Factors:
    """By group: the median of measured over emulated, for compute time, power and peak
    memory (1 where nothing was measured)."""

    compute: dict[int, float]
    power: dict[int, float]
    memory: dict[int, float]

    def of(self, which: str, group: int) -> float:
        return float(getattr(self, which).get(group, 1.0))

    @property
    def fleet_compute(self) -> float:
        """One factor for the whole fleet: the median of the groups'."""
        return statistics.median(self.compute.values()) if self.compute else 1.0


def timed(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The replayed sessions that ran their steps (not out of memory)."""
    return [e for e in entries if not e["measured"].get("out_of_memory")]


def group_factors(sessions: list[RunSession], entries: list[dict[str, Any]]) -> Factors:
    rows: dict[int, list[tuple[float, float | None, float]]] = {}
    for e in timed(entries):
        s, m = sessions[int(e["session"])], e["measured"]
        compute = measured_compute_s(m) / emulated_compute_s(s)
        power = (m["energy_j"] / m["compute_s"] / s.cost.busy_w
                 if m.get("energy_j") and m.get("compute_s") else None)
        rows.setdefault(s.group, []).append(
            (compute, power, float(m["peak_memory_mb"]) / s.cost.peak_memory_mb))
    out: dict[str, dict[int, float]] = {"compute": {}, "power": {}, "memory": {}}
    for g, got in rows.items():
        out["compute"][g] = statistics.median(r[0] for r in got)
        powers = [r[1] for r in got if r[1] is not None]
        if powers:
            out["power"][g] = statistics.median(powers)
        out["memory"][g] = statistics.median(r[2] for r in got)
    return Factors(**out)


def measured_costs(s: RunSession, m: dict[str, Any]) -> tuple[float, float, float, float]:
    """(step, set-up, power, peak memory) of a session as its device measured them: the
    mean step (its first included) and the set-up as timed, power where a meter answered."""
    busy_w = s.cost.busy_w
    if m.get("energy_j") and m.get("compute_s"):
        busy_w = m["energy_j"] / m["compute_s"]
    if m.get("out_of_memory"):  # out of memory on the device: out of memory in the twin
        return s.cost.step_s, s.cost.setup_s, busy_w, float("inf")
    times = [float(t) for t in m["step_time_s"]]
    return (sum(times) / len(times), float(m.get("load_s") or 0.0), busy_w,
            float(m["peak_memory_mb"]))


def batch_costs(model: SessionModel, sessions: list[RunSession], batch: list[RunSession],
                factors: Factors, measured: dict[int, dict[str, Any]]) -> SessionCosts:
    """Costs of every session of a batch: its group's nominal ones at the group's measured
    factors and the session's own draw; a replayed session's measured ones."""
    n = len(batch)
    step, setup, power, peak, factor = (np.zeros(n) for _ in range(5))
    for j, s in enumerate(batch):
        if s.row in measured:
            step[j], setup[j], power[j], peak[j] = measured_costs(s, measured[s.row])
            factor[j] = 1.0
            continue
        c = s.cost
        step[j] = c.step_s * factors.of("compute", s.group)
        setup[j] = c.setup_s * factors.of("compute", s.group)
        power[j] = c.busy_w * factors.of("power", s.group)
        peak[j] = c.peak_memory_mb * factors.of("memory", s.group)
        factor[j] = s.compute_factor
    return SessionCosts(step_s=step, busy_w=power, peak_memory_mb=peak, factor=factor,
                        setup_s=setup)


def rederive_round(model: SessionModel, orch: OrchestrationConfig, b: Batch,
                   costs: SessionCosts, fixed_cut: bool) -> np.ndarray[Any, Any]:
    """Every session of a synchronous round (or of the batch the stop cut) with these
    costs: the round's close recomputed, or the batch's own cut where `fixed_cut`."""
    p = model.replan(b.planned, np.arange(len(b.planned.client)), costs)
    if fixed_cut:
        return model.account(p, b.cut_s, b.cut_status).status
    start = float(b.planned.start_s[0])
    closed = close_round(p, start, orch, min(orch.clients_per_round, len(p.client)))
    return model.account(p, np.full(len(p.client), closed.cut_s), closed.cut_status).status


def decide(model: SessionModel, results: Results, sessions: list[RunSession],
           entries: list[dict[str, Any]]) -> dict[int, str]:
    """Each replayed session's outcome, derived again with the measured figures."""
    factors = group_factors(sessions, entries)
    measured = {int(e["session"]): e["measured"] for e in entries}
    orch = results.scenario.orchestration
    out: dict[int, str] = {}
    if orch.mode == "async":
        for row, m in measured.items():
            out[row] = STATUSES[async_status(model, results, sessions[row], m, factors)]
        return out
    by_batch: dict[int, list[RunSession]] = {}
    for row in measured:
        by_batch.setdefault(sessions[row].batch.first_row, []).append(sessions[row])
    for first, replayed in sorted(by_batch.items()):
        b = replayed[0].batch
        batch = sessions[first: first + len(b.planned.client)]
        costs = batch_costs(model, sessions, batch, factors, measured)
        stopped = int(b.round[0]) >= len(results.rounds)  # the round the stop cut short
        status = rederive_round(model, orch, b, costs, fixed_cut=stopped)
        for s in replayed:
            out[s.row] = STATUSES[int(status[s.index])]
    return out


def async_status(model: SessionModel, results: Results, s: RunSession, m: dict[str, Any],
                 factors: Factors) -> int:
    """An asynchronous session's outcome with its measurements."""
    step, setup, power, peak = measured_costs(s, m)
    p = model.replan(s.planned, np.array([s.index]), SessionCosts(
        step_s=np.array([step]), busy_w=np.array([power]), peak_memory_mb=np.array([peak]),
        factor=np.ones(1), setup_s=np.array([setup])))
    orch = results.scenario.orchestration
    deadline = p.start_s + orch.deadline_s
    status = int(model.account(p, deadline, DEADLINE).status[0])
    if status != COMPLETED:
        return status
    aggregation = s.round + orch.async_.max_staleness
    if aggregation >= len(results.rounds):
        return status
    start = float(p.start_s[0])
    stale_s = start + (results.rounds[aggregation].closed_s - start) * factors.fleet_compute
    return STALE if float(p.upload_end_s[0]) >= stale_s else status


def fixed_close_status(model: SessionModel, s: RunSession, m: dict[str, Any]) -> str:
    """The session's outcome with its measurements and its round's close held where it
    was: the check before rounds were derived again (a uniform slowdown of a
    target-closed round flips its sessions under it)."""
    step, setup, power, peak = measured_costs(s, m)
    p = model.replan(s.planned, np.array([s.index]), SessionCosts(
        step_s=np.array([step]), busy_w=np.array([power]), peak_memory_mb=np.array([peak]),
        factor=np.ones(1), setup_s=np.array([setup])))
    return STATUSES[int(model.account(p, np.array([s.cut_s]), s.batch.cut_status).status[0])]
