"""Monsoon power monitor CSV exports: time, main-channel current and voltage."""

from __future__ import annotations

from pathlib import Path

from edgetwin.common.errors import InputError
from edgetwin.common.files import read_csv

TIME, CURRENT, VOLTAGE = "Time(ms)", "Main(mA)", "Main Voltage(V)"


def energy_j(path: Path) -> tuple[float, float]:
    """(energy J, mean power W) over the capture, by the trapezoid rule."""
    t: list[float] = []
    p: list[float] = []
    for number, raw in enumerate(read_csv(path), start=2):
        row = {k.strip(): v for k, v in raw.items() if k}
        if not {TIME, CURRENT, VOLTAGE} <= set(row):
            raise InputError(str(path), "header", f"expected columns {TIME}, {CURRENT}, "
                             f"{VOLTAGE}")
        try:
            t.append(float(row[TIME]) / 1000.0)
            p.append(float(row[CURRENT]) / 1000.0 * float(row[VOLTAGE]))
        except (TypeError, ValueError):
            raise InputError(str(path), f"line {number}", "expected numbers") from None
    if len(t) < 2:
        raise InputError(str(path), "", "needs at least two samples")
    energy = sum((t[i + 1] - t[i]) * (p[i] + p[i + 1]) / 2 for i in range(len(t) - 1))
    return energy, energy / (t[-1] - t[0])
