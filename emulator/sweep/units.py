"""How a sweep metric is shown: a unit a reader takes in at a glance, and a precision
that follows the value."""

from __future__ import annotations

import math

from edgetwin.emulator.sweep.stats import Estimate


def unit(metric: str) -> tuple[str, float]:
    """The display unit of `metric` and the scale from its own unit (named in its name)."""
    if metric.startswith("time_to_round_") or metric.endswith("virtual_time_s"):
        return "h", 1 / 3600
    if metric.endswith("_s"):
        return "s", 1.0
    if "energy_j" in metric:
        return "kJ", 1e-3
    if "bytes" in metric:
        return "MB", 1e-6
    if metric.endswith("_share"):
        return "%", 100.0
    return "", 1.0


def title(metric: str) -> str:
    """`energy_j_per_round` as `energy per round (kJ)`; a group's metric as
    `laptops: share of updates (%)`."""
    name = metric.split(":")[0]
    if name.startswith("groups.") and name.count(".") >= 2:
        _, group, rest = name.split(".", 2)
        return f"{group}: {title(rest)}"
    label, _ = unit(name)
    if name.startswith("time_to_round_"):
        words = f"time to {name.removeprefix('time_to_round_').removesuffix('_s')} rounds"
    elif name == "update_share":
        words = "share of updates"
    else:
        words = name.replace("_j_", "_").replace("_bytes_", "_").removesuffix("_j")
        words = words.removesuffix("_bytes").removesuffix("_s").replace("_", " ")
    return f"{words} ({label})" if label else words


def number(x: float, digits: int | None = None) -> str:
    if math.isnan(x):
        return "-"
    d = digits if digits is not None else _decimals(x)
    return f"{x:,.{d}f}"


def interval(mean: float, half_width: float, scale: float = 1.0) -> str:
    """`mean ± half-width`, both scaled, to the precision the mean calls for."""
    d = _decimals(mean * scale)
    if math.isnan(half_width):
        return number(mean * scale, d)
    return f"{number(mean * scale, d)} ± {number(half_width * scale, d)}"


def _decimals(x: float) -> int:
    a = abs(x)
    if a == 0:
        return 0
    return 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3


def shown(e: Estimate, metric: str) -> str:
    """`mean ± half-width` in the metric's display unit."""
    _, scale = unit(metric)
    return "-" if math.isnan(e.mean) else interval(e.mean, e.half_width, scale)
