"""Units that fit a figure's size: 26.6 J is not "0.0 kJ", and 2.8 s is not "0.00 h"."""

from __future__ import annotations

ENERGY = ((1.0, "J"), (1e3, "kJ"), (1e6, "MJ"), (1e9, "GJ"))
BYTES = ((1.0, "B"), (1e3, "kB"), (1e6, "MB"), (1e9, "GB"), (1e12, "TB"))
DURATION = ((1.0, "s"), (60.0, "min"), (3600.0, "h"), (86400.0, "days"))


def unit_for(largest: float, units: tuple[tuple[float, str], ...]) -> tuple[float, str]:
    """The largest unit in which `largest` is at least 1 (the smallest for 0)."""
    scale, label = units[0]
    for s, name in units:
        if abs(largest) >= s:
            scale, label = s, name
    return scale, label


def shown(value: float, units: tuple[tuple[float, str], ...], digits: int = 3) -> str:
    """`value` in the unit that fits it, to `digits` significant figures: `26.6 J`."""
    scale, label = unit_for(value, units)
    return f"{value / scale:,.{digits}g} {label}"
