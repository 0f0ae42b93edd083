"""EdgeFlowerTune's protocols over runs of a Flower app: Quality-under-Budget (the best
quality each method reaches within a budget of virtual time, fleet energy or traffic),
Cost-to-Target (what each method spends to reach a target quality), and Robustness
(quality and cost under perturbations of the fleet, each against the unperturbed run).

Each run is one `app_metrics.csv` (`edgetwin.emulator.flower.run`): per app round, its metrics
and what the fleet had spent by the round's end. A run is a list of `Point`s.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetwin.common.errors import InputError
from edgetwin.common.files import read_csv
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.dist import Dist

COSTS = {"time": "virtual_time_s", "energy": "energy_j", "traffic": "traffic_bytes"}


@dataclass(frozen=True)
class Metric:
    """A quality column of app_metrics.csv, and which way is better."""

    column: str
    lower_is_better: bool

    @classmethod
    def parse(cls, text: str) -> Metric:
        """`server_perplexity`, or `NAME:min` / `NAME:max`; loss and perplexity are
        lower-is-better unless told."""
        name, _, way = text.partition(":")
        if way not in ("", "min", "max"):
            raise InputError("--metric", text, "the direction is min or max")
        lower = way == "min" or (not way and any(w in name for w in ("loss", "perplexity")))
        return cls(name, lower)

    def better(self, a: float, b: float) -> bool:
        return a < b if self.lower_is_better else a > b

    def reached(self, value: float, target: float) -> bool:
        return value <= target if self.lower_is_better else value >= target


@dataclass(frozen=True)
class Point:
    round: int
    quality: float
    virtual_time_s: float
    energy_j: float
    traffic_bytes: float

    def cost(self, kind: str) -> float:
        return float(getattr(self, COSTS[kind]))


def read_points(path: Path, metric: Metric) -> list[Point]:
    """The rounds of one run that measured `metric`, in order."""
    if not path.is_file():
        raise InputError(str(path), "", "no app metrics: did the app's strategy run?")
    rows = read_csv(path)
    if rows and metric.column not in rows[0]:
        known = ", ".join(k for k in rows[0] if k not in ("round", *COSTS.values()))
        raise InputError(str(path), metric.column, f"not a metric of this app (it reports: "
                         f"{known})")
    return points_of(rows, metric)


def points_of(rows: list[dict[str, Any]], metric: Metric) -> list[Point]:
    """The rows (app_metrics.csv's, read or about to be written) that measured `metric`."""
    return [Point(int(r["round"]), float(r[metric.column]), float(r["virtual_time_s"]),
                  float(r["energy_j"]), float(r["traffic_bytes"]))
            for r in rows if r.get(metric.column) not in ("", None)]


def quality_under_budget(points: list[Point], metric: Metric, kind: str,
                         budget: float) -> Point | None:
    """The best point whose cost of `kind` is within `budget`."""
    best: Point | None = None
    for p in points:
        if p.cost(kind) <= budget and (best is None or metric.better(p.quality, best.quality)):
            best = p
    return best


def cost_to_target(points: list[Point], metric: Metric, target: float) -> Point | None:
    """The first point that reaches `target`, or None."""
    return next((p for p in points if metric.reached(p.quality, target)), None)


def best(points: list[Point], metric: Metric) -> Point | None:
    out: Point | None = None
    for p in points:
        if out is None or metric.better(p.quality, out.quality):
            out = p
    return out


def parse_budget(text: str) -> tuple[str, float]:
    """`time_s=3600`, `energy_j=5e5` or `traffic_bytes=1e9`."""
    key, _, value = text.partition("=")
    kinds = {"time_s": "time", "energy_j": "energy", "traffic_bytes": "traffic"}
    if key not in kinds:
        raise InputError("--budget", text, "give time_s=, energy_j= or traffic_bytes=")
    try:
        number = float(value)
    except ValueError:
        raise InputError("--budget", text, "the budget is a number") from None
    if not number > 0 or math.isinf(number):
        raise InputError("--budget", text, "the budget must be > 0")
    return kinds[key], number


# --- robustness: the fleet perturbed, one change at a time --------------------------------
def _scaled(d: Dist, factor: float) -> Dist:
    return dataclasses.replace(d, value=d.value * factor, mean=d.mean * factor,
                               std=d.std * factor,
                               low=None if d.low is None else d.low * factor,
                               high=None if d.high is None else d.high * factor,
                               values=tuple(v * factor for v in d.values))


def _bandwidth_collapse(s: Scenario) -> Scenario:
    groups = tuple(dataclasses.replace(g, network=dataclasses.replace(
        g.network, downlink_mbps=_scaled(g.network.downlink_mbps, 0.1),
        uplink_mbps=_scaled(g.network.uplink_mbps, 0.1))) for g in s.fleet.groups)
    return dataclasses.replace(s, fleet=dataclasses.replace(s.fleet, groups=groups))


def _dropout(s: Scenario) -> Scenario:
    return dataclasses.replace(s, availability=dataclasses.replace(
        s.availability, dropout_per_hour=s.availability.dropout_per_hour + 2.0))


def _throttling(s: Scenario) -> Scenario:
    """Every device in surroundings at its own profile's full-throttle temperature: it
    starts there and stays there, so every group throttles, every round."""
    return dataclasses.replace(s, thermal=dataclasses.replace(s.thermal, enabled=True,
                                                              initial_c=None, hot=True))


def _low_battery(s: Scenario) -> Scenario:
    """Devices off their chargers, starting between the abort line and 10 points above
    it, and allowed to join there: batteries run out mid-session."""
    floor = s.battery.abort_below_pct
    groups = tuple(dataclasses.replace(g, plugged_share=0.0) for g in s.fleet.groups)
    return dataclasses.replace(
        s, fleet=dataclasses.replace(s.fleet, groups=groups),
        availability=dataclasses.replace(s.availability, charging_only=False),
        battery=dataclasses.replace(s.battery, min_pct_to_join=floor,
                                    initial_pct=Dist("uniform", low=floor + 1.0,
                                                     high=floor + 10.0)))


def _churn(s: Scenario) -> Scenario:
    return dataclasses.replace(s, availability=dataclasses.replace(
        s.availability, mean_session_s=900.0, online_fraction=0.5))


PERTURBATIONS: dict[str, tuple[str, Callable[[Scenario], Scenario]]] = {
    "dropout": ("every session abandoned at 2 per hour more", _dropout),
    "bandwidth": ("every link at a tenth of its bandwidth", _bandwidth_collapse),
    "throttling": ("every device kept at its full-throttle temperature", _throttling),
    "low-battery": ("off the charger, batteries 1-10 points above the abort line",
                    _low_battery),
    "churn": ("online spells of 15 minutes, half the time online", _churn),
}
