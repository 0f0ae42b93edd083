"""`edgetwin sweep --compare A B`: B minus A for every compared metric, with its 95 %
interval, in the metric's unit and relative to A."""

from __future__ import annotations

import math
from pathlib import Path

from edgetwin.common.console import out_console
from edgetwin.common.errors import InputError
from edgetwin.emulator.sweep.metrics import is_headline
from edgetwin.emulator.sweep.results import find, load_folder
from edgetwin.emulator.sweep.stats import difference
from edgetwin.emulator.sweep.units import interval, shown, title, unit
from edgetwin.profiles.schema import load_yaml

RECORD = "sweep.yaml"


def print_comparison(folder: Path, pair: list[str]) -> int:
    from rich.table import Table

    _, _, results = load_folder(folder)
    a, b = find(results, pair[0]), find(results, pair[1])
    metrics = list(a.by_seed)
    con = out_console()
    t = Table(title=f"B #{b.index} ({b.label()}) minus A #{a.index} ({a.label()})",
              title_justify="left")
    for col in ("metric", "A", "B", "B - A", "relative to A"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    unpaired = []
    for m in compared(folder, metrics):
        if m not in a.by_seed or m not in b.by_seed:
            continue
        d = difference(a.by_seed[m], b.by_seed[m])
        if not d.paired:
            unpaired.append(title(m))
        label, scale = unit(m)
        label = "pp" if label == "%" else label  # a difference of shares: percentage points
        gap = interval(d.diff.mean, d.diff.half_width, scale)
        rel = "-" if math.isnan(d.relative) else (
            f"{100 * d.relative:+.1f} %" + ("" if math.isnan(d.relative_half_width) else
                                            f" ± {100 * d.relative_half_width:.1f} %"))
        zero = not math.isnan(d.diff.half_width) and not d.significant
        t.add_row(title(m), shown(d.a, m), shown(d.b, m), f"{gap} {label}".strip(),
                  rel + (" (0 inside)" if zero else ""))
    con.print(t)
    note = "95 % intervals of the differences paired by seed"
    if unpaired:
        note += (f"; Welch's where the two settings lack a value for some seed "
                 f"({', '.join(unpaired)})")
    con.print(note)
    return 0


def compared(folder: Path, metrics: list[str]) -> list[str]:
    """The sweep's compared metrics (its own list, or the headline ones), then each
    group's share of the updates."""
    try:
        record = load_yaml(folder / RECORD)
    except InputError:
        record = None
    asked = record.get("metrics") if isinstance(record, dict) else None
    lead = [m.split(":")[0] for m in asked] if asked else [m for m in metrics if is_headline(m)]
    return [*lead, *[m for m in metrics if m.endswith(".update_share") and m not in lead]]
