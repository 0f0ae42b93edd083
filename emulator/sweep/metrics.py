"""What a sweep measures of each run: the headline metrics it compares, every number of
the run's summary.json under a dotted name, a Flower app's last reported values; which
names exist before the runs do, and which side of each is better."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgetwin.common.files import read_csv, read_json_object
from edgetwin.emulator.session import STATUSES

TIME_TO = "time_to_round_{n}_s"
HEADLINE = ("rounds_per_hour", TIME_TO, "energy_j_per_round", "traffic_bytes_per_round",
            "completed_share")
UPDATE_SHARE = "groups.{group}.update_share"  # the group's share of aggregated updates
APP_METRICS = "app_metrics.csv"
APP_PREFIX = "app."
APP_BOOKKEEPING = ("round", "virtual_time_s", "energy_j", "traffic_bytes")
# the top-level numbers of summary.json (tests/test_sweep.py holds this to a real run)
SUMMARY_NUMBERS = ("virtual_time_s", "rounds_completed", "rounds_attempted", "mean_round_s",
                   "client_sessions", "completed_sessions", "energy_j", "upload_bytes",
                   "download_bytes", "energy_j_in_rounds", "energy_j_after_last_round",
                   "energy_j_running_at_stop", "energy_j_idle_standby", "fleet_clients",
                   "clients_participated")
GROUP_NUMBERS = ("client_sessions", "clients", "completed_sessions", "download_bytes",
                 "energy_j", "upload_bytes")
# the better side of the metrics where it is known
MORE_IS_BETTER = ("rounds_per_hour", "completed_share", "completed_sessions",
                  "rounds_completed", "clients_participated")
LESS_IS_BETTER_PREFIX = ("time_to_round_", "energy_j", "traffic_bytes", "upload_bytes",
                         "download_bytes", "failures.", "mean_round_s")
Metrics = dict[str, Any]


def headline(target_rounds: int) -> list[str]:
    return [m.format(n=target_rounds) for m in HEADLINE]


def known(target_rounds: int, groups: tuple[str, ...]) -> set[str]:
    """Every metric name a run of these groups has (a Flower app's come on top)."""
    failures = [f"failures.{s}" for s in STATUSES if s != "completed"]
    names = {*headline(target_rounds), *SUMMARY_NUMBERS, *failures}
    for g in groups:
        names |= {UPDATE_SHARE.format(group=g), *(f"groups.{g}.{k}" for k in GROUP_NUMBERS),
                  *(f"groups.{g}.{f}" for f in failures)}
    return names


def direction(metric: str) -> str | None:
    """`max` or `min` for the metrics whose better side is known (`NAME:max` or `:min`
    says it for others), None otherwise."""
    name, _, given = metric.partition(":")
    if given in ("max", "min"):
        return given
    if name in MORE_IS_BETTER or name.endswith(".completed_sessions"):
        return "max"
    if name.startswith(LESS_IS_BETTER_PREFIX) or ".energy_j" in name:
        return "min"
    return None


def run_metrics(folder: Path, target_rounds: int) -> Metrics:
    """The metrics of a finished run folder, headline ones first."""
    s = read_json_object(folder / "summary.json", ("rounds_completed", "virtual_time_s"))
    rounds = s["rounds_completed"]
    hours = s["virtual_time_s"] / 3600
    out: Metrics = {
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
        out[UPDATE_SHARE.format(group=name)] = g["completed_sessions"] / done if done \
            else math.nan
    out.update(_flat(s))
    out.update(_app_metrics(folder / APP_METRICS))
    out["stop_reason"] = s["stop_reason"]
    return out


def _time_to(rounds_csv: Path, n: int) -> float:
    """When the n-th aggregation ended (NaN if the run stopped before)."""
    count = 0
    for r in read_csv(rounds_csv, ("aggregated", "end_s")):
        count += int(r["aggregated"])
        if count >= n:
            return float(r["end_s"])
    return math.nan


def _flat(data: dict[str, Any], prefix: str = "") -> Metrics:
    """The numbers of summary.json under dotted names (text, lists and hashes left out;
    the seed is its own column)."""
    out: Metrics = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "profiles_sha256":
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and key != "seed":
            out[name] = value
    return out


def _app_metrics(path: Path) -> Metrics:
    """The last number each metric of the app's app_metrics.csv took."""
    if not path.is_file():
        return {}
    rows = read_csv(path)
    out: Metrics = {}
    for row in rows:
        for key, value in row.items():
            if key in APP_BOOKKEEPING or value in ("", None):
                continue
            try:
                out[f"{APP_PREFIX}{key}"] = float(value)
            except ValueError:  # a metric that is not a number is not compared
                continue
    return out


def is_headline(name: str) -> bool:
    return name in HEADLINE or name.startswith(TIME_TO.split("{")[0])
