"""What a sweep runs: a scenario, a grid of dotted keys with their values, the seeds and
the metrics to compare; from the command line or a sweep file, every key checked.

A grid key is a dotted scenario key as `--set` takes it (`selection.policy`,
`fleet.groups.0.share`), or `app.KEY` for a key of a Flower app's run config. Values are
YAML. The settings are the grid's product, in the order the keys and values were given.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgetwin.common.errors import InputError
from edgetwin.profiles.schema import load_yaml, parse_yaml

APP_PREFIX = "app."  # grid keys of a Flower app's run config
DEFAULT_SEEDS = 5
SWEEP_FILE_KEYS = ("scenario", "grid", "seeds", "set", "metrics", "target_rounds", "out",
                   "app", "run_config", "name")


@dataclass(frozen=True)
class Axis:
    """One swept key and the values it takes."""

    key: str
    values: tuple[Any, ...]

    @property
    def is_app(self) -> bool:
        return self.key.startswith(APP_PREFIX)


@dataclass(frozen=True)
class Setting:
    """One point of the grid (1-based `index`, as sweep.md numbers it)."""

    index: int
    values: tuple[Any, ...]  # one per axis

    def label(self, axes: tuple[Axis, ...]) -> str:
        return ", ".join(f"{a.key}={show(v)}" for a, v in zip(axes, self.values, strict=True))


@dataclass(frozen=True)
class SweepSpec:
    scenario: Path
    axes: tuple[Axis, ...]
    seeds: tuple[int, ...] | int | None  # a list, or a count from the scenario's seed
    fixed: tuple[tuple[str, Any, str], ...] = ()  # keys set in every run: key, value, where
    metrics: tuple[str, ...] = ()  # compared in sweep.md; empty: the headline metrics
    target_rounds: int | None = None  # N of "time to N rounds"; None: the scenario's stop
    out: Path | None = None
    app: Path | None = None
    run_config: str | None = None
    name: str | None = None
    where: str = "--grid"  # names the grid in messages: the flag or the sweep file

    def settings(self) -> list[Setting]:
        product = itertools.product(*[a.values for a in self.axes])
        return [Setting(i, tuple(v)) for i, v in enumerate(product, start=1)]


def show(value: Any) -> str:
    """A grid value as a user would type it (also its cell in sweep.csv)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value) if isinstance(value, int | float) else yaml.safe_dump(
        value, default_flow_style=True, width=10_000).strip()


def parse_grid_arg(text: str) -> Axis:
    """`KEY=V1,V2,...` (values YAML, so `[a,b]` is one list value)."""
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not key or not eq or not raw.strip():
        raise InputError("--grid", text, "expected KEY=V1,V2,... (a dotted scenario key and "
                         "its values)")
    try:
        values = parse_yaml(f"[{raw}]")
    except yaml.YAMLError as err:
        raise InputError("--grid", key, f"values are not YAML ({_first_line(err)})") from None
    return _axis(key, values, "--grid")


def parse_seeds(text: str) -> tuple[int, ...] | int:
    """`10` (that many seeds) or `1,2,7` (those seeds): whole numbers only."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise InputError("--seeds", text, "expected a count, or seeds as whole numbers >= 0 "
                         "separated by commas")
    values = [int(p) for p in parts]
    return check_seeds(values[0] if len(values) == 1 and "," not in text else values,
                       "--seeds", "")


def check_seeds(value: Any, where: str, key: str) -> tuple[int, ...] | int:
    """A count of seeds (>= 1), or a list of distinct seeds (>= 0)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise InputError(where, key, f"{value}: a number of seeds is at least 1")
        return value
    if isinstance(value, list) and value and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        if len(set(value)) != len(value):
            raise InputError(where, key, "a seed is listed twice")
        return tuple(value)
    raise InputError(where, key, f"expected a count or a list of seeds (integers >= 0), "
                     f"got {value!r}")


def seeds_from(count_or_list: tuple[int, ...] | int | None, root: int | None) -> tuple[int, ...]:
    """A count of seeds runs the scenario's seed and the ones after it (0 when it has none)."""
    if isinstance(count_or_list, tuple):
        return count_or_list
    count = DEFAULT_SEEDS if count_or_list is None else count_or_list
    start = root if root is not None else 0
    return tuple(range(start, start + count))


def _axis(key: str, values: Any, where: str) -> Axis:
    if not isinstance(values, list) or not values:
        raise InputError(where, key, "expected a list of values")
    shown = [show(v) for v in values]
    if len(set(shown)) != len(shown):
        raise InputError(where, key, "a value is listed twice")
    return Axis(key, tuple(values))


def check_axes(axes: list[Axis], where: str) -> tuple[Axis, ...]:
    keys = [a.key for a in axes]
    for key in keys:
        if keys.count(key) > 1:
            raise InputError(where, key, "swept twice: give its values once")
    return tuple(axes)


def load_sweep_file(path: Path) -> SweepSpec:
    """A sweep file: `scenario` (relative to the file), `grid` (key: [values]), and
    optionally `seeds`, `set`, `metrics`, `target_rounds`, `out`, `app`, `run_config`, `name`."""
    where = str(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise InputError(where, "(top level)", "expected a mapping")
    for key in data:
        if key not in SWEEP_FILE_KEYS:
            raise InputError(where, str(key), f"unknown key (expected one of: "
                             f"{', '.join(SWEEP_FILE_KEYS)})")
    base = path.parent
    scenario = data.get("scenario")
    if not isinstance(scenario, str):
        raise InputError(where, "scenario", "expected the path of a scenario YAML")
    grid = data.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise InputError(where, "grid", "expected a mapping of dotted keys to lists of values")
    axes = check_axes([_axis(f"grid.{k}", v, where) for k, v in grid.items()], where)
    axes = tuple(Axis(a.key.removeprefix("grid."), a.values) for a in axes)
    overrides = data.get("set") or {}
    if not isinstance(overrides, dict):
        raise InputError(where, "set", "expected a mapping of dotted keys to values")
    seeds = data.get("seeds")
    metrics = data.get("metrics") or []
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise InputError(where, "metrics", "expected a list of metric names")
    target = data.get("target_rounds")
    if target is not None and (not isinstance(target, int) or isinstance(target, bool) or
                               target < 1):
        raise InputError(where, "target_rounds", f"expected a whole number >= 1, got {target!r}")
    for key in ("out", "app", "run_config", "name"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise InputError(where, key, "expected a string")
    return SweepSpec(
        scenario=base / scenario, axes=axes,
        seeds=None if seeds is None else check_seeds(seeds, where, "seeds"),
        fixed=tuple((str(k), v, where) for k, v in overrides.items()),
        metrics=tuple(metrics), target_rounds=target,
        out=base / data["out"] if data.get("out") else None,
        app=base / data["app"] if data.get("app") else None,
        run_config=data.get("run_config"), name=data.get("name"), where=where)


def is_sweep_file(path: Path) -> bool:
    """A sweep file names a scenario and a grid; a scenario names a fleet."""
    try:
        data = load_yaml(path)
    except InputError:
        return False
    return isinstance(data, dict) and "grid" in data and "fleet" not in data


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__
