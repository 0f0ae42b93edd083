"""How far the emulator's predictions were from the hardware, and whether its
decisions hold: the figures of crosscheck.json.

Errors are relative, `predicted / measured - 1`, as fractions (0.05 = 5 %):
- `step_time`: the profile's step time against the session's median measured step;
- `session_time`: the session's compute time (steps x step time) against the measured
  training time, first step included (where one-off costs of a session show);
- `peak_memory`: the predicted peak of the process against its measured high-water mark;
- `energy`: predicted against metered energy; null where no meter was readable.
`decision_agreement` plans each replayed session again in the emulator's own session
model with the measured step time, power and peak memory in place of the predicted
ones (the scenario's link model and the run's round close times kept) and compares
the outcome. `selection_agreement` asks the run's selection policy again, for the
rounds sampled, with each group's costs scaled by what its devices measured.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from emulator.observer import I64, Observer
from emulator.runfolder import rerun
from emulator.selection.policies import Context, Policy, Pool
from emulator.selection.registry import POLICIES
from emulator.session import STATUSES, SessionCosts, SessionModel
from hil.replay import Prepared
from hil.runsessions import RunSession
from hil.sampling import NEAR, UNIFORM

METRICS = ("step_time", "session_time", "peak_memory", "energy")


def signed_errors(entries: Iterable[dict[str, Any]], metric: str) -> list[float]:
    out = []
    for e in entries:
        m, p = e["measured"], e["predicted"]
        if m.get("out_of_memory"):
            continue
        pair = {"step_time": (p["step_s"], m.get("median_step_s")),
                "session_time": (p["compute_s"], m.get("compute_s")),
                "peak_memory": (p["peak_memory_mb"], m.get("peak_memory_mb")),
                "energy": (p["energy_j"], m.get("energy_j"))}[metric]
        if pair[1] is not None and pair[1] > 0:
            out.append(pair[0] / pair[1] - 1.0)
    return out


def error_summary(errors: list[float]) -> dict[str, Any] | None:
    if not errors:
        return None
    return {"median_abs_error": round(statistics.median(abs(e) for e in errors), 4),
            "mean_signed_error": round(statistics.fmean(errors), 4),
            "within_10pct": round(sum(abs(e) <= 0.10 for e in errors) / len(errors), 4),
            "sessions": len(errors)}


# --- decisions ------------------------------------------------------------------------------
def measured_costs(m: dict[str, Any], s: RunSession) -> SessionCosts:
    """The session's nominal costs as its device measured them (power predicted where no
    meter answered)."""
    busy_w = s.cost.busy_w
    if m.get("energy_j") and m.get("compute_s"):
        busy_w = m["energy_j"] / m["compute_s"]
    step = m.get("mean_step_s") or s.cost.step_s
    return SessionCosts(np.array([step]), np.array([busy_w]),
                        np.array([float(m.get("peak_memory_mb") or s.cost.peak_memory_mb)]))


def decision_with(model: SessionModel, s: RunSession, measured: dict[str, Any]) -> str:
    """The session's outcome with the measured figures in place of the predicted ones."""
    again = model.replan(s.planned, np.array([s.index]), measured_costs(measured, s))
    o = model.account(again, np.array([s.cut_s]), s.cut_status)
    return STATUSES[int(o.status[0])]


def decision(prepared: Prepared, e: dict[str, Any]) -> str:
    return decision_with(prepared.engine.model, prepared.sessions[int(e["session"])],
                         e["measured"])


# --- selection -------------------------------------------------------------------------------
class SelectionCheck(Observer):
    """Asks the policy again, in the sampled rounds, with the groups' costs scaled."""

    def __init__(self, rounds: set[int], factors: Mapping[int, tuple[float, float, float]],
                 policy: Policy) -> None:
        self.rounds, self.factors, self.policy = rounds, factors, policy
        self.kept: dict[int, int] = {}  # by group
        self.chosen: dict[int, int] = {}

    def selected(self, ctx: Context, pool: Pool, chosen: I64, rnd: int) -> None:
        if rnd not in self.rounds or len(chosen) == 0:
            return
        view = ctx.clients
        scale = np.array([self.factors.get(int(g), (1.0, 1.0, 1.0)) for g in view.costs.group])
        costs = view.costs.scaled(scale[:, 0], scale[:, 1], scale[:, 2])
        again = pool.clients[self.policy(
            dataclasses.replace(ctx, clients=view.with_costs(costs)), pool)]
        stays = np.isin(chosen, again)
        for g in np.unique(view.group[chosen]).tolist():
            mine = view.group[chosen] == g
            self.kept[g] = self.kept.get(g, 0) + int(stays[mine].sum())
            self.chosen[g] = self.chosen.get(g, 0) + int(mine.sum())


def group_factors(prepared: Prepared, entries: list[dict[str, Any]]
                  ) -> dict[int, tuple[float, float, float]]:
    """Per group: median measured/predicted of step time, power and peak memory."""
    by_group: dict[int, list[tuple[float, float, float]]] = {}
    for e in entries:
        m = e["measured"]
        if m.get("out_of_memory"):
            continue
        s = prepared.sessions[int(e["session"])]
        costs = measured_costs(m, s)
        by_group.setdefault(s.group, []).append(
            (float(costs.step_s[0]) / s.cost.step_s, float(costs.busy_w[0]) / s.cost.busy_w,
             float(costs.peak_memory_mb[0]) / s.cost.peak_memory_mb))
    return {g: tuple(statistics.median(r[i] for r in rows) for i in range(3))  # type: ignore[misc]
            for g, rows in by_group.items()}


def selection_agreement(prepared: Prepared, entries: list[dict[str, Any]]
                        ) -> tuple[float | None, dict[int, float]]:
    """Overall and per-group share of selected clients that stay selected."""
    rounds = {prepared.sessions[int(e["session"])].round for e in entries}
    check = SelectionCheck(rounds, group_factors(prepared, entries),
                           POLICIES[prepared.run.scenario.selection.policy])
    rerun(prepared.run, check)
    total = sum(check.chosen.values())
    per_group = {g: check.kept[g] / n for g, n in check.chosen.items() if n}
    return (sum(check.kept.values()) / total if total else None), per_group


# --- the whole report ---------------------------------------------------------------------------
def figures(entries: list[dict[str, Any]], decided: dict[int, str]) -> dict[str, Any]:
    """Error summaries and decision agreement of a set of replayed sessions; `decided`
    holds each session's outcome with the measured figures."""
    out: dict[str, Any] = {m: error_summary(signed_errors(entries, m)) for m in METRICS}
    agree = [decided[int(e["session"])] == e["outcome"] for e in entries]
    out["decision_agreement"] = round(sum(agree) / len(agree), 4) if agree else None
    out["sessions"] = len(entries)
    return out


def crosscheck(prepared: Prepared, header: dict[str, Any], replayed: list[dict[str, Any]],
               lost: list[dict[str, Any]]) -> dict[str, Any]:
    replayed = sorted(replayed, key=lambda e: int(e["session"]))
    report: dict[str, Any] = {
        "run": header["run"], "devices": header["devices"], "seed": header["seed"],
        "sessions_sampled": len(header["sample"]), "sessions_replayed": len(replayed),
        "sessions_lost": len(lost)}
    decided = {int(e["session"]): decision(prepared, e) for e in replayed}
    report.update(figures(replayed, decided))
    overall, per_group = selection_agreement(prepared, replayed)
    report["selection_agreement"] = None if overall is None else round(overall, 4)
    groups = prepared.results.fleet.groups
    report["selection_agreement_by_group"] = {groups[g].name: round(v, 4)
                                              for g, v in sorted(per_group.items())}
    report["per_device"] = {
        d: figures([e for e in replayed if e["device"] == d], decided)
        for d in sorted({e["device"] for e in replayed})}
    report["strata"] = {st: figures([e for e in replayed if e["stratum"] == st], decided)
                        for st in (UNIFORM, NEAR)}
    report["disagreements"] = [
        {"session": e["session"], "device": e["device"], "group": e["group"],
         "emulated": e["outcome"], "with_measured_figures": decided[int(e["session"])],
         "stratum": e["stratum"]}
        for e in replayed if decided[int(e["session"])] != e["outcome"]]
    report["transfers"] = _transfers(replayed)
    report["upload_bytes_mismatches"] = [
        {"session": e["session"], "predicted": e["predicted"]["upload_bytes"],
         "measured": e["measured"].get("upload_bytes")}
        for e in replayed if not e["measured"].get("out_of_memory")
        and e["measured"].get("upload_bytes") != e["predicted"]["upload_bytes"]]
    report["lost"] = [{"session": e["session"], "device": e["device"],
                       "reason": e.get("reason", "")} for e in lost]
    return report


def _transfers(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Median transfer times: modelled on the clients' links, measured on the devices'."""
    def med(key: str, side: str) -> float | None:
        vals = [e[side][key] for e in entries if e[side].get(key) is not None]
        return round(statistics.median(vals), 4) if vals else None

    return {"download_s": {"modelled": med("download_s", "predicted"),
                           "measured": med("download_s", "measured")},
            "upload_s": {"modelled": med("upload_s", "predicted"),
                         "measured": med("upload_s", "measured")}}
