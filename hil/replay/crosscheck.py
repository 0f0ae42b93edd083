"""How far the emulator's predictions were from the hardware, whether its decisions
hold, and whether the uncertainty it states holds: the figures of crosscheck.json.

Errors are relative, `predicted / measured - 1`, as fractions (0.05 = 5 %):
- `step_time`: the profile's step time against the session's median measured step;
- `session_time`: the session's compute (set-up, first step and steps) against its
  measured set-up and steps;
- `peak_memory`: the predicted peak of the process against its measured high-water mark;
- `energy`: predicted against metered energy; null where no meter was readable.
`decision_agreement` compares each replayed session's outcome in the run with its
outcome derived again with the measured figures (`edgetwin.hil.replay.decisions`), overall, per
stratum and per margin class: sessions whose outcome no compute time could change
agree by construction and are reported apart. `selection_agreement` asks the run's
selection policy again, in the rounds sampled, with each group's costs scaled by what
its devices measured; a policy that reads no costs is not scored. The scores and the
verdict are `edgetwin.hil.replay.verdict`'s.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from edgetwin.common.arrays import I64
from edgetwin.emulator.observer import Observer
from edgetwin.emulator.output.folder import rerun
from edgetwin.emulator.selection.policies import Context, Policy, Pool
from edgetwin.emulator.selection.registry import POLICIES, READS_COSTS
from edgetwin.hil.replay import decisions, verdict
from edgetwin.hil.replay.run import Prepared
from edgetwin.hil.replay.sampling import STRATA

METRICS = ("step_time", "session_time", "peak_memory", "energy")
MARGIN_CLASSES = ("sensitive", "robust", "fixed")


def signed_errors(entries: Iterable[dict[str, Any]], metric: str) -> list[float]:
    out = []
    for e in entries:
        m, p = e["measured"], e["predicted"]
        if m.get("out_of_memory"):
            continue
        pair = {"step_time": (p["step_s"], m.get("median_step_s")),
                "session_time": (p["compute_s"], decisions.measured_compute_s(m)),
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


def agreement(entries: list[dict[str, Any]], decided: dict[int, str]) -> float | None:
    agree = [decided[int(e["session"])] == e["outcome"] for e in entries]
    return round(sum(agree) / len(agree), 4) if agree else None


def figures(entries: list[dict[str, Any]], decided: dict[int, str]) -> dict[str, Any]:
    """Error summaries and decision agreement of a set of replayed sessions; `decided`
    holds each session's outcome with the measured figures."""
    out: dict[str, Any] = {m: error_summary(signed_errors(entries, m)) for m in METRICS}
    out["decision_agreement"] = agreement(entries, decided)
    out["sessions"] = len(entries)
    return out


# --- selection -------------------------------------------------------------------------------
class SelectionCheck(Observer):
    """Asks the policy again, in the sampled rounds, with the groups' costs scaled."""

    selections = True

    def __init__(self, rounds: set[int], factors: Mapping[int, tuple[float, float, float]],
                 policy: Policy) -> None:
        self.rounds, self.factors, self.policy = rounds, factors, policy
        self.kept: dict[int, int] = {}  # by group
        self.chosen: dict[int, int] = {}

    def selected(self, ctx: Context, pool: Pool, places: I64, rounds: I64,
                 counted: np.ndarray[Any, np.dtype[np.bool_]] | None = None) -> None:
        wanted = np.isin(rounds, list(self.rounds))
        if counted is not None:
            wanted &= counted
        mine = wanted[pool.launch[places]]
        if not mine.any():
            return
        view = ctx.clients
        scale = np.array([self.factors.get(int(g), (1.0, 1.0, 1.0)) for g in view.costs.group])
        costs = view.costs.scaled(scale[:, 0], scale[:, 1], scale[:, 2])
        again = self.policy(dataclasses.replace(ctx, clients=view.with_costs(costs)), pool)
        pairs = set(zip(pool.clients[again].tolist(), pool.launch[again].tolist(), strict=True))
        chosen, launch = pool.clients[places][mine], pool.launch[places][mine]
        stays = np.array([(c, j) in pairs for c, j in zip(chosen.tolist(), launch.tolist(),
                                                          strict=True)], dtype=bool)
        for g in np.unique(view.group[chosen]).tolist():
            m = view.group[chosen] == g
            self.kept[g] = self.kept.get(g, 0) + int(stays[m].sum())
            self.chosen[g] = self.chosen.get(g, 0) + int(m.sum())


def selection_agreement(prepared: Prepared, entries: list[dict[str, Any]]
                        ) -> tuple[float | None, dict[int, float], str]:
    """Overall and per-group share of selected clients that stay selected, or why there
    is none."""
    policy = prepared.run.scenario.selection.policy
    if not READS_COSTS[policy]:
        return None, {}, (f"not applicable: the {policy} policy reads no costs, so what the "
                          "devices measured cannot change whom it selects")
    rounds = {prepared.sessions[int(e["session"])].round for e in entries}
    f = decisions.group_factors(prepared.sessions, entries)
    factors = {g: (f.of("compute", g), f.of("power", g), f.of("memory", g))
               for g in f.compute}
    check = SelectionCheck(rounds, factors, POLICIES[policy])
    rerun(prepared.run, check)
    total = sum(check.chosen.values())
    per_group = {g: check.kept[g] / n for g, n in check.chosen.items() if n}
    if not total:
        return None, {}, "no selection in the sampled rounds"
    return sum(check.kept.values()) / total, per_group, ""


# --- the whole report ---------------------------------------------------------------------------
def crosscheck(prepared: Prepared, header: dict[str, Any], replayed: list[dict[str, Any]],
               lost: list[dict[str, Any]]) -> dict[str, Any]:
    replayed = sorted(replayed, key=lambda e: int(e["session"]))
    report: dict[str, Any] = {
        "run": header["run"], "devices": header["devices"], "seed": header["seed"],
        "sessions_sampled": len(header["sample"]), "sessions_replayed": len(replayed),
        "sessions_lost": len(lost)}
    decided = decisions.decide(prepared.engine.model, prepared.results, prepared.sessions,
                               replayed)
    report.update(figures(replayed, decided))
    sessions = prepared.sessions
    by_class = {c: [e for e in replayed if sessions[int(e["session"])].margin_class == c]
                for c in MARGIN_CLASSES}
    report["decision_agreement_sensitive"] = agreement(by_class["sensitive"], decided)
    report["sensitive_sessions"] = len(by_class["sensitive"])
    report["decision_agreement_by_margin"] = {
        c: {"sessions": len(v), "decision_agreement": agreement(v, decided)}
        for c, v in by_class.items()}
    report["strata"] = {st: figures([e for e in replayed if e["stratum"] == st], decided)
                        for st in STRATA}
    report["per_device"] = {
        d: figures([e for e in replayed if e["device"] == d], decided)
        for d in sorted({e["device"] for e in replayed})}
    s = verdict.scores(replayed, {r: v == "completed" for r, v in decided.items()})
    report.update(s.as_dict())
    report["verdict"], report["verdict_reasons"] = verdict.verdict(s)
    overall, per_group, why = selection_agreement(prepared, replayed)
    report["selection_agreement"] = None if overall is None else round(overall, 4)
    report["selection_agreement_note"] = why
    groups = prepared.results.fleet.groups
    report["selection_agreement_by_group"] = {groups[g].name: round(v, 4)
                                              for g, v in sorted(per_group.items())}
    report["disagreements"] = [
        {"session": e["session"], "device": e["device"], "group": e["group"],
         "emulated": e["outcome"], "with_measured_figures": decided[int(e["session"])],
         "stratum": e["stratum"], "timing_margin": e["predicted"].get("timing_margin"),
         "p_complete": e["predicted"].get("p_complete")}
        for e in replayed if decided[int(e["session"])] != e["outcome"]]
    report["transfers"] = _transfers(replayed)
    report["upload_bytes_mismatches"] = [
        {"session": e["session"], "predicted": e["predicted"]["upload_bytes"],
         "measured": e["measured"].get("upload_bytes")}
        for e in replayed if not e["measured"].get("out_of_memory")
        and e["measured"].get("upload_bytes") != e["predicted"]["upload_bytes"]]
    report["lost"] = [{"session": e["session"], "device": e["device"],
                       "reason": e.get("reason", "")} for e in lost]
    report["devices_since_calibration"] = header.get("devices_since_calibration", {})
    return report


def _transfers(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Median transfer times: modelled on the clients' links, measured on the devices'
    (the upload's transfer apart from serialising the tensors)."""
    def med(key: str, side: str) -> float | None:
        vals = [e[side][key] for e in entries if e[side].get(key) is not None]
        return round(statistics.median(vals), 4) if vals else None

    return {"download_s": {"modelled": med("download_s", "predicted"),
                           "measured": med("download_s", "measured")},
            "upload_s": {"modelled": med("upload_s", "predicted"),
                         "measured": med("upload_s", "measured")},
            "serialize_s": {"measured": med("serialize_s", "measured")}}
