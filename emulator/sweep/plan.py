"""A sweep's runs: each setting's scenario loaded and checked before anything runs, each
seed a run, and each run named by a hash of what it computes.

A run's id is the hash of its resolved scenario and its seed, the contents of the
files and profiles it reads, the app and its run config, and the edgetwin version: a
finished run with the same id is the same result, whichever sweep or grid it came from.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgetwin.common.errors import InputError
from edgetwin.common.version import package_version
from edgetwin.emulator.config import DEFAULT_STOP_ROUNDS, Scenario
from edgetwin.emulator.output.inputs import named_files
from edgetwin.emulator.scenario import load_scenario, resolve_profile, resolved
from edgetwin.emulator.sweep.spec import APP_PREFIX, Axis, Setting, SweepSpec, seeds_from, show

if TYPE_CHECKING:
    from edgetwin.emulator.flower.app import FlowerApp

RUN_ID_CHARS = 12


@dataclass(frozen=True)
class Run:
    setting: Setting
    seed: int
    run_id: str
    scenario: Scenario  # checked, with this run's seed
    app: FlowerApp | None


@dataclass(frozen=True)
class Plan:
    spec: SweepSpec
    name: str
    settings: list[Setting]
    seeds: tuple[int, ...]
    runs: list[Run]  # settings in grid order, seeds within each
    target_rounds: int
    group_names: tuple[str, ...]  # of every setting's fleet, first seen first
    warnings: list[str]  # each setting's scenario warnings, once each


def plan(spec: SweepSpec, overrides: list[str] | None = None) -> Plan:
    """Every setting loaded and checked (a bad key or value is an `InputError` naming the
    grid key), then one run per seed."""
    if spec.app is None:
        app_axes_without_app(spec.axes, spec.where)
    for axis in spec.axes:
        if axis.key == "seed":
            raise InputError(spec.where, "seed", "seeds are not a grid key: give --seeds "
                             "(or seeds: in a sweep file)")
    settings = spec.settings()
    runs: list[Run] = []
    warnings: list[str] = []
    groups: list[str] = []
    seeds: tuple[int, ...] = ()
    profile_digests: dict[str, str] = {}
    first: Scenario | None = None
    for setting in settings:
        scenario, app = _load_setting(spec, setting, overrides or [])
        first = first or scenario
        seeds = seeds_from(spec.seeds, first.seed)
        base = Path(scenario.source).parent if scenario.source else Path(".")
        warnings += [w for w in scenario.warnings if w not in warnings]
        groups += [g.name for g in scenario.fleet.groups if g.name not in groups]
        inputs = _inputs_digest(scenario, base, profile_digests, app)
        text = resolved(dataclasses.replace(scenario, seed=None), {}) + inputs
        for seed in seeds:
            run_id = hashlib.sha256(f"{text}seed: {seed}\n".encode()).hexdigest()
            runs.append(Run(setting, seed, run_id[:RUN_ID_CHARS],
                            dataclasses.replace(scenario, seed=seed), app))
    assert first is not None  # a grid has at least one setting
    seen: dict[str, Run] = {}
    for r in runs:
        if r.run_id in seen and seen[r.run_id].setting != r.setting:
            first_label = seen[r.run_id].setting.label(spec.axes)
            raise InputError(spec.where, "grid", f"the settings {first_label} and "
                             f"{r.setting.label(spec.axes)} give the same scenario: a swept "
                             "key that takes no effect, or two ways of writing one value")
        seen[r.run_id] = r
    target = spec.target_rounds or first.stop.rounds or DEFAULT_STOP_ROUNDS
    name = spec.name or f"{first.name}-sweep"
    return Plan(spec, name, settings, seeds, runs, target, tuple(groups), warnings)


def _load_setting(spec: SweepSpec, setting: Setting, overrides: list[str]
                  ) -> tuple[Scenario, FlowerApp | None]:
    scenario_axes = [(a, v) for a, v in zip(spec.axes, setting.values, strict=True)
                     if not a.is_app]
    try:
        scenario = load_scenario(spec.scenario, overrides, values=[
            *spec.fixed, *[(a.key, v, spec.where) for a, v in scenario_axes]])
    except InputError as err:
        if err.where == spec.where:  # named by the grid already
            raise
        key = _dotted(err.key)
        for axis, value in scenario_axes:
            if key == axis.key or key.startswith(axis.key + ".") or \
                    axis.key.startswith(key + "."):
                bad_key = err.problem.startswith("unknown key")
                raise InputError(spec.where, axis.key, err.problem if bad_key else
                                 f"{show(value)}: {err.problem}") from None
        if len(spec.settings()) > 1:
            raise InputError(err.where, err.key, f"{err.problem} (in the setting "
                             f"{setting.label(spec.axes)})") from None
        raise
    if scenario.validation is not None:
        raise InputError(scenario.source or str(spec.scenario), "validation", "a sweep runs "
                         "without attached devices: drop the section, or use edgetwin simulate")
    app = _load_app(spec, setting) if spec.app is not None else None
    return scenario, app


def _load_app(spec: SweepSpec, setting: Setting) -> FlowerApp:
    from edgetwin.emulator.flower.app import load_app

    assert spec.app is not None
    items = [f"{a.key.removeprefix(APP_PREFIX)}={_toml(v, a.key, spec.where)}"
             for a, v in zip(spec.axes, setting.values, strict=True) if a.is_app]
    config = " ".join([spec.run_config or "", *items]).strip()
    try:
        return load_app(spec.app, config or None)
    except InputError as err:
        for a in spec.axes:
            if a.is_app and err.key.startswith(a.key.removeprefix(APP_PREFIX)):
                raise InputError(spec.where, a.key, "not a key of the app's "
                                 "[tool.flwr.app.config]") from None
        raise


def app_axes_without_app(axes: tuple[Axis, ...], where: str) -> None:
    """`app.` keys need `--app`."""
    for a in axes:
        if a.is_app:
            raise InputError(where, a.key, "sweeps a Flower app's run config: give --app DIR")


def _toml(value: Any, key: str, where: str) -> str:
    """A grid value in Flower's `--run-config` syntax (a TOML value: a number, true or
    false, a string, or a list of those)."""
    scalar = (bool, int, float, str)
    if isinstance(value, scalar) or (isinstance(value, list) and all(
            isinstance(v, scalar) for v in value)):
        return json.dumps(value)  # TOML writes these as JSON does
    raise InputError(where, key, f"{show(value)}: a run config value is a number, true, "
                     "false, a string or a list of them")


def _dotted(key: str) -> str:
    """`fleet.groups[0].share` as `--set` names it: `fleet.groups.0.share`."""
    return key.replace("[", ".").replace("]", "")


@functools.cache
def code_digest() -> str:
    """A hash of the code that computes a run (the emulator and profiles packages, the
    shipped profiles and models): a run kept from other code is not the same result."""
    h = hashlib.sha256(package_version().encode())
    for package in ("edgetwin.emulator", "edgetwin.profiles"):
        root = Path(importlib.import_module(package).__file__ or "").parent
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".yaml", ".json") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def _inputs_digest(s: Scenario, base: Path, profiles: dict[str, str],
                   app: FlowerApp | None) -> str:
    """What a run reads beyond its scenario text, as one line of hashes."""
    parts = [f"edgetwin {package_version()} code {code_digest()}"]
    for g in s.fleet.groups:
        if g.profile not in profiles:
            profiles[g.profile] = resolve_profile(g.profile, base).sha256
        parts.append(f"profile {g.profile} {profiles[g.profile]}")
    model = base / s.workload.model
    parts += [f"file {p.name} {_digest(p, model=p == model)}" for p in named_files(s, base)]
    if app is not None:
        parts.append(f"app {_digest(app.folder)} {json.dumps(app.run_config, sort_keys=True)}")
    return "\n# " + "\n# ".join(parts) + "\n"


def _digest(path: Path, model: bool = False) -> str:
    """A file's sha256, or a folder's over its files (names and bytes; caches skipped); of
    a model's folder, only the config.json a run reads."""
    h = hashlib.sha256()
    if model and path.is_dir():
        path = path / "config.json"
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()
