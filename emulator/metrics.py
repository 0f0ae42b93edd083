"""Results to files: summary.json, rounds.csv, client_sessions.csv.

Formats are fixed (times in ms resolution, energy in mJ, bytes whole) so that the
same seed gives the same bytes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from emulator.engine import Results
from emulator.records import SESSION_COLUMNS
from emulator.session import COMPLETED, STATUSES

_FORMATS = {"start_s": "%.3f", "end_s": "%.3f", "download_s": "%.3f", "compute_s": "%.3f",
            "upload_s": "%.3f", "energy_j": "%.3f", "peak_memory_mb": "%.1f"}


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
        "fleet_clients": r.fleet.n,
        "clients_participated": len(np.unique(s["client"])) if n else 0,
        "groups": {},
        "profiles_sha256": profile_hashes,
    }
    for gi, g in enumerate(r.fleet.groups):
        mask = s["group"] == gi if n else np.zeros(0, dtype=bool)
        out["groups"][g.name] = {"profile": g.profile, "clients": int(np.sum(r.fleet.group == gi)),
                                 **_totals(s, mask)}
    return out


def write_sessions_csv(r: Results, path: Path) -> None:
    s = r.sessions
    names = [g.name for g in r.fleet.groups]
    buf = io.StringIO()
    buf.write(",".join(SESSION_COLUMNS) + "\n")
    if s:
        cols = []
        for k in SESSION_COLUMNS:
            v = s[k]
            if k == "group":
                cols.append(np.array(names, dtype=object)[v.astype(np.int64)])
            elif k == "status":
                cols.append(np.array(STATUSES, dtype=object)[v.astype(np.int64)])
            elif k in _FORMATS:
                cols.append(np.char.mod(_FORMATS[k], v))
            else:
                cols.append(v.astype(np.int64).astype(str))
        for row in zip(*cols, strict=True):
            buf.write(",".join(row) + "\n")
    path.write_text(buf.getvalue())


def write_rounds_csv(r: Results, path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        fields = [f.name for f in dataclasses.fields(type(r.rounds[0]))] if r.rounds else \
            ["round"]
        w.writerow([*fields, "duration_s"])
        for row in r.rounds:
            d = dataclasses.asdict(row)
            w.writerow([_fmt(d[k]) for k in fields] + [_fmt(row.end_s - row.start_s)])


def write_summary(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
