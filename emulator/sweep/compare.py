"""`edgetwin sweep --compare A B`: B minus A for every compared metric, with its 95 %
interval, in the metric's unit and relative to A."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from emulator.sweep.results import by_setting, find
from emulator.sweep.stats import difference
from emulator.sweep.table import TAIL, read_csv
from emulator.sweep.units import interval, shown, title, unit
from profiles.errors import InputError
from profiles.schema import load_yaml

CSV = "sweep.csv"


def print_comparison(folder: Path, pair: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    path = folder / CSV
    if not path.is_file():
        raise InputError(str(folder), "--compare", "holds no sweep.csv: run the sweep first")
    rows = read_csv(path)
    if not rows:
        raise InputError(str(path), "", "no runs")
    record = load_yaml(folder / "sweep.yaml")
    keys = list(record.get("grid", {})) if isinstance(record, dict) else []
    columns = list(rows[0])
    metrics = [c for c in columns if c not in (*keys, "seed", *TAIL)]
    results = by_setting(rows, keys, metrics)
    a, b = find(results, pair[0]), find(results, pair[1])
    shown_metrics = _compared(record, metrics)
    con = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    t = Table(title=f"B #{b.index} ({b.label()}) minus A #{a.index} ({a.label()})",
              title_justify="left")
    for col in ("metric", "A", "B", "B - A", "relative to A"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    paired = True
    for m in shown_metrics:
        if m not in a.by_seed or m not in b.by_seed:
            continue
        d = difference(a.by_seed[m], b.by_seed[m])
        paired = paired and d.paired
        label, k = unit(m)
        label = "pp" if label == "%" else label  # a difference of shares: percentage points
        gap = interval(d.diff.mean, d.diff.half_width, k)
        rel = "-" if math.isnan(d.relative) else (
            f"{100 * d.relative:+.1f} % ± {100 * d.relative_half_width:.1f} %")
        mark = "" if d.significant else " (0 inside)"
        t.add_row(title(m), shown(d.a, m), shown(d.b, m), f"{gap} {label}".strip(), rel + mark)
    con.print(t)
    con.print("95 % intervals, " + ("paired over the seeds both ran" if paired else
                                     "Welch's (the settings ran different seeds)"))
    return 0


def _compared(record: object, metrics: list[str]) -> list[str]:
    """The sweep's compared metrics, then each group's share of the updates."""
    asked = record.get("metrics") if isinstance(record, dict) else None
    lead = [m.split(":")[0] for m in asked] if asked else metrics[:5]
    return [*lead, *[m for m in metrics if m.endswith(".update_share") and m not in lead]]
