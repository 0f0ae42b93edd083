"""Monsoon power monitor CSV exports: time, main-channel current and voltage."""

from __future__ import annotations

import csv
from pathlib import Path

from profiles.errors import InputError

TIME, CURRENT, VOLTAGE = "Time(ms)", "Main(mA)", "Main Voltage(V)"


def energy_j(path: Path) -> tuple[float, float]:
    """(energy J, mean power W) over the capture, by the trapezoid rule."""
    t: list[float] = []
    p: list[float] = []
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {TIME, CURRENT, VOLTAGE} <= {
                    f.strip() for f in reader.fieldnames}:
                raise InputError(str(path), "header", f"expected columns {TIME}, {CURRENT}, "
                                 f"{VOLTAGE}")
            for number, row in enumerate(reader, start=2):
                row = {k.strip(): v for k, v in row.items() if k}
                try:
                    t.append(float(row[TIME]) / 1000.0)
                    p.append(float(row[CURRENT]) / 1000.0 * float(row[VOLTAGE]))
                except (TypeError, ValueError):
                    raise InputError(str(path), f"line {number}", "expected numbers") from None
    except OSError as err:
        raise InputError(str(path), "", f"cannot read ({err.strerror})") from None
    if len(t) < 2:
        raise InputError(str(path), "", "needs at least two samples")
    energy = sum((t[i + 1] - t[i]) * (p[i] + p[i + 1]) / 2 for i in range(len(t) - 1))
    return energy, energy / (t[-1] - t[0])
