"""Results to files: summary.json, rounds.csv, client_sessions.csv.

Formats are fixed (times in ms resolution, energy in mJ, bytes whole) so that the
same seed gives the same bytes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgetwin.emulator.engine import Results
from edgetwin.emulator.output.fastcsv import Column, write
from edgetwin.emulator.records import SESSION_COLUMNS
from edgetwin.emulator.session import COMPLETED, STATUSES

DECIMALS = {"start_s": 3, "end_s": 3, "download_s": 3, "compute_s": 3, "upload_s": 3,
             "energy_j": 3, "peak_memory_mb": 1, "temp_start_c": 2, "temp_end_c": 2,
             "throttled_s": 3, "battery_start_pct": 2, "battery_end_pct": 2,
             "compute_factor": 4, "timing_margin": 4, "p_complete": 4, "session_s_p05": 3,
             "session_s_p95": 3}
SUMS_OVER_FLEET = 8  # fleet clients a value, at most, for sums counted over the fleet


def _totals(sessions: dict[str, np.ndarray[Any, Any]], mask: np.ndarray[Any, Any]
            ) -> dict[str, Any]:
    status = sessions["status"][mask]
    failures = {STATUSES[i]: int(np.sum(status == i)) for i in range(len(STATUSES))
                if i != COMPLETED}
    return {
        "client_sessions": int(mask.sum()),
        "completed_sessions": int(np.sum(status == COMPLETED)),
        "energy_j": round(float(sessions["energy_j"][mask].sum()), 3),
        "upload_bytes": int(sessions["upload_bytes"][mask].sum()),
        "download_bytes": int(sessions["download_bytes"][mask].sum()),
        "failures": failures,
    }


def _energy_parts(r: Results) -> dict[str, float]:
    """`energy_j` in three parts that add up to it: the rows of rounds.csv, the sessions
    that ended but are in no row, and those the stop cut short; and apart from it, the
    fleet's standby energy outside its sessions."""
    return {"energy_j_in_rounds": round(sum(row.energy_j for row in r.rounds), 3),
            "energy_j_after_last_round": round(r.energy_j_after_last_round, 3),
            "energy_j_running_at_stop": round(r.energy_j_running_at_stop, 3),
            "energy_j_idle_standby": round(_standby_j(r), 3)}


def _standby_j(r: Results) -> float:
    """Every client's standby power (its profile's `power.standby_w`) over the run's
    virtual time outside its own sessions: what the fleet spends not training."""
    standby_w = np.array([p.power.standby_w for p in r.fleet.profiles])
    whole_fleet_j = float(np.dot(r.fleet.counts, standby_w)) * r.virtual_time_s
    if not r.sessions:
        return whole_fleet_j
    clients, busy_s = _per_client(r.sessions["client"],
                                  r.sessions["end_s"] - r.sessions["start_s"], r.fleet.n)
    in_sessions_j = standby_w[r.fleet.group[clients]] * np.minimum(busy_s, r.virtual_time_s)
    return whole_fleet_j - float(np.sum(in_sessions_j))


def _per_client(client: np.ndarray[Any, Any], value: np.ndarray[Any, Any], n: int
                ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The clients with a value (in order) and each one's sum, added in the order given:
    counted over the fleet where it is at most a few times the values (no sort), else
    over the distinct clients (a fleet far larger than its sessions)."""
    if n <= SUMS_OVER_FLEET * len(client):
        clients = np.flatnonzero(np.bincount(client, minlength=n))
        return clients, np.bincount(client, weights=value, minlength=n)[clients]
    clients, which = np.unique(client, return_inverse=True)
    return clients, np.bincount(which, weights=value)


def summary(r: Results, version: str, profile_hashes: dict[str, str]) -> dict[str, Any]:
    s = r.sessions
    n = len(s["client"]) if s else 0
    everything = np.ones(n, dtype=bool)
    empty = {k: np.zeros(0) for k in SESSION_COLUMNS}
    s = s or empty
    durations = [row.end_s - row.start_s for row in r.rounds]
    out: dict[str, Any] = {
        "scenario": r.scenario.name, "seed": r.seed, "edgetwin_version": version,
        "mode": r.scenario.orchestration.mode, "stop_reason": r.stop_reason,
        "virtual_time_s": round(r.virtual_time_s, 3),
        "rounds_completed": sum(row.aggregated for row in r.rounds),
        "rounds_attempted": len(r.rounds),
        "mean_round_s": round(float(np.mean(durations)), 3) if durations else 0.0,
        **_totals(s, everything),
        **_energy_parts(r),
        "fleet_clients": r.fleet.n,
        "clients_participated": int(np.count_nonzero(np.bincount(s["client"]))) if n else 0,
        "groups": {},
        "profiles_sha256": profile_hashes,
        "warnings": list(r.warnings),
    }
    for gi, g in enumerate(r.fleet.groups):
        mask = s["group"] == gi if n else np.zeros(0, dtype=bool)
        out["groups"][g.name] = {"profile": g.profile, "clients": r.fleet.counts[gi],
                                 **_totals(s, mask)}
    return out


def write_sessions_csv(r: Results, path: Path) -> None:
    s = r.sessions
    names = [g.name for g in r.fleet.groups]
    columns = []
    for k in SESSION_COLUMNS:
        v = s[k] if s else np.zeros(0)
        if k == "group":
            columns.append(Column(v, labels=names))
        elif k == "status":
            columns.append(Column(v, labels=STATUSES))
        else:
            columns.append(Column(v, decimals=DECIMALS.get(k, 0)))
    for codes, labels in r.label_columns.values():
        columns.append(Column(codes, labels=labels))
    write(path, [*SESSION_COLUMNS, *r.label_columns], columns)


def round_columns(r: Results) -> dict[str, list[Any]]:
    """rounds' columns in order: the round records' fields, then `duration_s` (a run
    without rounds: the header `round` alone), whatever the file's format."""
    if not r.rounds:
        return {"round": []}
    columns = {f.name: [getattr(row, f.name) for row in r.rounds]
               for f in dataclasses.fields(type(r.rounds[0]))}
    columns["duration_s"] = [row.end_s - row.start_s for row in r.rounds]
    return columns


def write_rounds_csv(r: Results, path: Path) -> None:
    columns = round_columns(r)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["round", "duration_s"] if not r.rounds else list(columns))
        w.writerows([_fmt(v) for v in row] for row in zip(*columns.values(), strict=True))


def write_summary(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
