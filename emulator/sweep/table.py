"""`sweep.csv`: one row per run, a column per swept key (named by its dotted key), the
seed, then every metric of the run: the headline metrics the sweep compares, then each
number of summary.json flattened (`failures.battery`, `groups.laptops.energy_j`), the
last value of each metric a Flower app reported (`app.server_perplexity`), and the
run's status, error line, setting (numbered as in sweep.md) and folder."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from emulator.sweep.plan import Plan, Run
from emulator.sweep.spec import show

TIME_TO = "time_to_round_{n}_s"
HEADLINE = ("rounds_per_hour", TIME_TO, "energy_j_per_round", "traffic_bytes_per_round",
            "completed_share")
UPDATE_SHARE = "groups.{group}.update_share"  # the group's share of aggregated updates
APP_METRICS = "app_metrics.csv"
APP_BOOKKEEPING = ("round", "virtual_time_s", "energy_j", "traffic_bytes")
# the top-level numbers of summary.json (tests/test_sweep.py holds this to a real run)
SUMMARY_NUMBERS = ("virtual_time_s", "rounds_completed", "rounds_attempted", "mean_round_s",
                   "client_sessions", "completed_sessions", "energy_j", "upload_bytes",
                   "download_bytes", "energy_j_in_rounds", "energy_j_after_last_round",
                   "energy_j_running_at_stop", "energy_j_idle_standby", "fleet_clients",
                   "clients_participated")
TAIL = ("stop_reason", "status", "error", "setting", "run")
Row = dict[str, Any]


def headline(plan: Plan) -> list[str]:
    """The metrics sweep.md compares: the sweep's own list, or the headline ones."""
    if plan.spec.metrics:
        return [m.split(":")[0] for m in plan.spec.metrics]
    return [m.format(n=plan.target_rounds) for m in HEADLINE]


def run_metrics(folder: Path, target_rounds: int) -> Row:
    """The metrics of a finished run folder, headline ones first."""
    s = json.loads((folder / "summary.json").read_text())
    rounds = s["rounds_completed"]
    hours = s["virtual_time_s"] / 3600
    row: Row = {
        "rounds_per_hour": rounds / hours if hours > 0 else math.nan,
        TIME_TO.format(n=target_rounds): _time_to(folder / "rounds.csv", target_rounds),
        "energy_j_per_round": s["energy_j_in_rounds"] / rounds if rounds else math.nan,
        "traffic_bytes_per_round": ((s["upload_bytes"] + s["download_bytes"]) / rounds
                                    if rounds else math.nan),
        "completed_share": (s["completed_sessions"] / s["client_sessions"]
                            if s["client_sessions"] else math.nan),
    }
    done = s["completed_sessions"]
    for name, g in s["groups"].items():
        row[UPDATE_SHARE.format(group=name)] = g["completed_sessions"] / done if done else 0.0
    row.update(_flat(s))
    row.update(_app_metrics(folder / APP_METRICS))
    row["stop_reason"] = s["stop_reason"]
    return row


def _time_to(rounds_csv: Path, n: int) -> float:
    """When the n-th aggregation ended (NaN if the run stopped before)."""
    count = 0
    with rounds_csv.open(newline="") as fh:
        for r in csv.DictReader(fh):
            count += int(r["aggregated"])
            if count >= n:
                return float(r["end_s"])
    return math.nan


def _flat(data: dict[str, Any], prefix: str = "") -> Row:
    """The numbers of summary.json under dotted names (text, lists and hashes left out;
    the seed is its own column)."""
    out: Row = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "profiles_sha256":
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and key != "seed":
            out[name] = value
    return out


def _app_metrics(path: Path) -> Row:
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    out: Row = {}
    for row in rows:  # the last value each metric took
        for key, value in row.items():
            if key not in APP_BOOKKEEPING and value not in ("", None):
                out[f"app.{key}"] = float(value)
    return out


def rows_for(plan: Plan, results: dict[str, tuple[str, str]], runs_dir: Path) -> list[Row]:
    """A row per run of the plan that finished or failed (`results`: run id -> status,
    error line), in the plan's order."""
    rows = []
    for run in plan.runs:
        if run.run_id not in results:
            continue
        status, error = results[run.run_id]
        row = _keys(plan, run)
        if status == "ok":
            row.update(run_metrics(runs_dir / run.run_id, plan.target_rounds))
        row.update(status=status, error=error, setting=run.setting.index, run=f"runs/{run.run_id}")
        rows.append(row)
    return rows


def _keys(plan: Plan, run: Run) -> Row:
    row: Row = {a.key: show(v) for a, v in zip(plan.spec.axes, run.setting.values, strict=True)}
    row["seed"] = run.seed
    return row


def columns(plan: Plan, rows: list[Row]) -> list[str]:
    lead = [a.key for a in plan.spec.axes] + ["seed"]
    metrics: list[str] = []
    for row in rows:
        metrics += [k for k in row if k not in lead and k not in TAIL and k not in metrics]
    return [*lead, *metrics, *TAIL]


def write_csv(plan: Plan, rows: list[Row], path: Path) -> None:
    cols = columns(plan, rows)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(cols)
        for row in rows:
            w.writerow([_cell(row.get(c)) for c in cols])


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
