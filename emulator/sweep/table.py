"""`sweep.csv`: one row per run, a column per swept key (named by its dotted key), the
seed, then every metric of the run (edgetwin.emulator.sweep.metrics: the headline metrics, each
number of summary.json, a Flower app's), and the run's stop reason, status, error line,
setting (numbered as in sweep.md) and folder."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from edgetwin.common.files import read_csv as read_rows
from edgetwin.emulator.sweep.metrics import run_metrics
from edgetwin.emulator.sweep.plan import Plan, Run
from edgetwin.emulator.sweep.spec import show

CSV_NAME = "sweep.csv"
TAIL = ("stop_reason", "status", "error", "setting", "run")
Row = dict[str, Any]


def rows_for(plan: Plan, statuses: dict[str, tuple[str, str]], runs_dir: Path) -> list[Row]:
    """A row per run of the plan that finished or failed (`statuses`: run id -> status,
    error line), in the plan's order."""
    rows = []
    for run in plan.runs:
        if run.run_id not in statuses:
            continue
        status, error = statuses[run.run_id]
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


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The swept keys (the columns before `seed`) and the rows of a sweep.csv."""
    rows = read_rows(path, ("seed", "status"))
    head = next(iter(csv.reader(path.read_text().splitlines())))
    return head[:head.index("seed")], rows


def metric_columns(keys: list[str], rows: list[dict[str, str]]) -> list[str]:
    head = list(rows[0]) if rows else []
    return [c for c in head if c not in (*keys, "seed", *TAIL)]
