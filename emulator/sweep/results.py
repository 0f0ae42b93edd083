"""A sweep's rows grouped by setting, as sweep.md, the plots, `--compare` and the API
read them (from sweep.csv, so that a finished sweep is compared without running
anything)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgetwin.common.errors import InputError
from edgetwin.common.files import looks_whole
from edgetwin.emulator.sweep.metrics import direction
from edgetwin.emulator.sweep.spec import show
from edgetwin.emulator.sweep.stats import Difference, Estimate, difference, estimate
from edgetwin.emulator.sweep.table import CSV_NAME, metric_columns, read_csv
from edgetwin.profiles.schema import parse_yaml


@dataclass
class SettingResult:
    index: int
    values: dict[str, str]  # swept key -> value, as in sweep.csv
    runs: int = 0
    failed: int = 0
    by_seed: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> seed -> value

    @property
    def ok(self) -> int:
        return self.runs - self.failed

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items())

    def estimate(self, metric: str) -> Estimate:
        return estimate(list(self.by_seed.get(metric, {}).values()))


def by_setting(rows: list[dict[str, str]], keys: list[str], metrics: list[str]
               ) -> list[SettingResult]:
    """The rows of sweep.csv per setting, in the settings' order."""
    out: dict[int, SettingResult] = {}
    for row in rows:
        index = int(row["setting"])
        res = out.setdefault(index, SettingResult(index, {k: row[k] for k in keys}))
        res.runs += 1
        if row["status"] != "ok":
            res.failed += 1
            continue
        for m in metrics:
            cell = row.get(m, "")
            res.by_seed.setdefault(m, {})[int(row["seed"])] = float(cell) if cell else math.nan
    return [out[i] for i in sorted(out)]


def load_folder(folder: Path, where: str = "--compare"
                ) -> tuple[list[str], list[dict[str, str]], list[SettingResult]]:
    """A sweep folder's swept keys, sweep.csv rows, and settings with every metric."""
    path = folder / CSV_NAME
    if not path.is_file():
        raise InputError(str(folder), where, f"holds no {CSV_NAME}: run the sweep first")
    if not looks_whole(path):
        raise InputError(str(path), "", "cut short (it does not end where a line ends): "
                         "the same sweep command writes it again from the run folders")
    keys, rows = read_csv(path)
    if not rows:
        raise InputError(str(path), "", "no runs yet")
    return keys, rows, by_setting(rows, keys, metric_columns(keys, rows))


def find(results: list[SettingResult], text: str, where: str = "--compare") -> SettingResult:
    """A setting by its number in sweep.md, or by `key=value[,key=value]` naming one
    (values as YAML: `0.50` finds `0.5`)."""
    if not results:
        raise InputError(where, text, "the sweep has no settings with runs yet")
    if text.isdigit():
        for res in results:
            if res.index == int(text):
                return res
        raise InputError(where, text, f"no setting {text} (settings 1 to "
                         f"{max(r.index for r in results)})")
    wanted: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in results[0].values:
            raise InputError(where, text, "expected a setting's number or KEY=VALUE[,...] "
                             f"of the swept keys ({', '.join(results[0].values)})")
        wanted[key.strip()] = _normal(value.strip())
    hits = [r for r in results
            if all(_normal(r.values[k]) == v for k, v in wanted.items())]
    if len(hits) != 1:
        raise InputError(where, text, f"matches {len(hits)} settings, not one: name more "
                         "swept keys, or the setting's number")
    return hits[0]


def _normal(text: str) -> str:
    try:
        return show(parse_yaml(text))
    except yaml.YAMLError:  # text that is not YAML compares as itself
        return text


@dataclass(frozen=True)
class Best:
    setting: SettingResult
    value: Estimate
    runner_up: SettingResult | None
    margin: Difference | None  # runner-up minus best


def best(results: list[SettingResult], metric: str) -> Best | None:
    """The setting with the best mean of `metric` (`NAME:max|min` says which side is
    better where it is not known), among the settings where most finished runs have a
    value (a time to N rounds that most seeds never reached does not win), and among
    those, where any has a value for every run, only those; None where the better side
    is not known or no setting qualifies (`no_best_reason` says why)."""
    way = direction(metric)
    name = metric.split(":")[0]
    ranked = _eligible(results, name)
    if way is None or not ranked:
        return None
    ranked.sort(key=lambda r: r.estimate(name).mean, reverse=way == "max")
    top = ranked[0]
    second = ranked[1] if len(ranked) > 1 else None
    margin = difference(top.by_seed[name], second.by_seed[name]) if second else None
    return Best(top, top.estimate(name), second, margin)


def reached(r: SettingResult, metric: str) -> int:
    """The setting's finished runs with a value of `metric` (a target reached)."""
    return r.estimate(metric.split(":")[0]).n


def no_best_reason(results: list[SettingResult], metric: str) -> str:
    """Why `best` names no setting for a metric whose better side is known."""
    name = metric.split(":")[0]
    counts = ", ".join(f"#{r.index} {reached(r, name)} of {r.ok}" for r in results)
    return f"no setting has a value in most of its seeds ({counts})"


def _eligible(results: list[SettingResult], name: str) -> list[SettingResult]:
    have = [r for r in results
            if r.ok and not math.isnan(r.estimate(name).mean) and 2 * reached(r, name) > r.ok]
    complete = [r for r in have if reached(r, name) == r.ok]
    return complete or have
