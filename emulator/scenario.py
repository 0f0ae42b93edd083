"""Scenario files: parsed into `emulator.config`, defaults filled in, unknown keys
rejected, checked as a whole.

A scenario names the fleet (device groups), the workload, data, network,
availability, battery, thermal, memory, server, orchestration, selection policy,
stopping rule and seed. `load_scenario` parses, applies `--set` overrides and
cross-checks; `resolved` writes it back with every default filled in.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from emulator.config import Scenario
from emulator.dist import Dist
from emulator.selection.params import POLICY_NAMES
from profiles.device import DeviceProfile, load_profile
from profiles.errors import InputError
from profiles.models import CATALOGUE, ModelArch, load_model
from profiles.schema import from_mapping, load_yaml, to_mapping


def load_scenario(path: Path, overrides: list[str] | None = None,
                  seed: int | None = None, base: Path | None = None,
                  metadata: tuple[str, ...] = ()) -> Scenario:
    """Parse, override (`a.b.c=value`, value parsed as YAML), and check a scenario.

    Files it names are relative to `base` (default: the scenario's folder); the
    top-level `metadata` keys (a run folder's) are set aside, not parsed."""
    where = str(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise InputError(where, "(top level)", "expected a mapping")
    data = _rename_async({k: v for k, v in data.items() if k not in metadata})
    for item in overrides or []:
        _apply_override(data, item)
    if seed is not None:
        data["seed"] = seed
    data["source"] = where
    scenario = from_mapping(Scenario, data, where)
    check_scenario(scenario, base or path.parent)
    return scenario


def _rename_async(data: dict[str, Any]) -> dict[str, Any]:
    """`async` is a Python keyword; the YAML key maps to the field `async_`."""
    orch = data.get("orchestration")
    if isinstance(orch, dict) and "async" in orch:
        orch = dict(orch)
        orch["async_"] = orch.pop("async")
        data = {**data, "orchestration": orch}
    return data


def _apply_override(data: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise InputError("--set", item, "expected dotted.key=value")
    key, raw = item.split("=", 1)
    parts = key.split(".")
    if parts[:2] == ["orchestration", "async"]:
        parts[1] = "async_"
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise InputError("--set", key, f"{part!r} is not a mapping")
        node = node.setdefault(part, {})
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if isinstance(node, list) and parts[-1].isdigit():
        node[int(parts[-1])] = value
    elif isinstance(node, dict):
        node[parts[-1]] = value
    else:
        raise InputError("--set", key, "does not name a key")


def check_scenario(s: Scenario, base: Path) -> None:
    """Cross-field checks, each naming the key path that is wrong."""
    where = s.source or "scenario"
    if s.fleet.clients <= 0:
        raise InputError(where, "fleet.clients", f"must be > 0, got {s.fleet.clients}")
    if not s.fleet.groups:
        raise InputError(where, "fleet.groups", "needs at least one device group")
    has_count = [g.count is not None for g in s.fleet.groups]
    has_share = [g.share is not None for g in s.fleet.groups]
    for i, g in enumerate(s.fleet.groups):
        key = f"fleet.groups[{i}]"
        if has_count[i] == has_share[i]:
            raise InputError(where, key, "give exactly one of count or share")
        if g.count is not None and g.count < 0:
            raise InputError(where, f"{key}.count", f"must be >= 0, got {g.count}")
        if g.share is not None and not 0 <= g.share <= 1:
            raise InputError(where, f"{key}.share", f"must be in [0, 1], got {g.share}")
        _check_profile(where, f"{key}.profile", g.profile, base)
        for name in ("downlink_mbps", "uplink_mbps", "latency_ms"):
            d: Dist = getattr(g.network, name)
            d.check(where, f"{key}.network.{name}")
            floor = d.lower_bound()
            if floor < 0 or (floor == 0 and name != "latency_ms"):
                raise InputError(where, f"{key}.network.{name}",
                                 f"must be {'>= 0' if name == 'latency_ms' else '> 0'}, "
                                 f"got a distribution reaching {floor}")
        for name in ("speed", "usable_ram", "background_load"):
            getattr(g.spread, name).check(where, f"{key}.spread.{name}")
        if g.network.trace:
            _check_file(where, f"{key}.network.trace", g.network.trace, base)
        for name in ("batch", "seq", "grad_accum"):
            if getattr(g.setup, name) <= 0:
                raise InputError(where, f"{key}.setup.{name}", "must be > 0")
        if not 0 <= g.plugged_share <= 1:
            raise InputError(where, f"{key}.plugged_share", "must be in [0, 1]")
    if any(has_count) and any(has_share):
        raise InputError(where, "fleet.groups", "mix of count and share: use one kind")
    if all(has_count) and sum(g.count or 0 for g in s.fleet.groups) != s.fleet.clients:
        raise InputError(where, "fleet.groups", f"counts add up to "
                         f"{sum(g.count or 0 for g in s.fleet.groups)}, "
                         f"fleet.clients is {s.fleet.clients}")
    if all(has_share) and abs(sum(g.share or 0 for g in s.fleet.groups) - 1) > 1e-6:
        raise InputError(where, "fleet.groups", f"shares sum to "
                         f"{sum(g.share or 0 for g in s.fleet.groups):g}, not 1")
    try:
        resolve_model(s.workload.model, base)
    except InputError as err:
        raise InputError(where, "workload.model", err.problem) from None
    if s.workload.algorithm == "splitlora" and not s.workload.split_layer:
        raise InputError(where, "workload.split_layer", "splitlora needs a split layer")
    if s.workload.lora_rank <= 0:
        raise InputError(where, "workload.lora_rank", "must be > 0")
    if s.data.local_steps is None and s.data.local_epochs is None:
        raise InputError(where, "data", "give local_steps or local_epochs")
    if s.data.local_steps is not None and s.data.local_steps <= 0:
        raise InputError(where, "data.local_steps", "must be > 0")
    if s.data.dirichlet_alpha is not None and not s.data.total_examples:
        raise InputError(where, "data.total_examples", "a Dirichlet split needs the total")
    s.data.examples_per_client.check(where, "data.examples_per_client")
    if s.availability.trace:
        _check_file(where, "availability.trace", s.availability.trace, base)
    if not 0 < s.availability.online_fraction <= 1:
        raise InputError(where, "availability.online_fraction", "must be in (0, 1]")
    if s.availability.mean_session_s is not None and s.availability.mean_session_s <= 0:
        raise InputError(where, "availability.mean_session_s", "must be > 0")
    if s.availability.dropout_per_hour < 0:
        raise InputError(where, "availability.dropout_per_hour", "must be >= 0")
    o = s.orchestration
    if o.clients_per_round <= 0:
        raise InputError(where, "orchestration.clients_per_round", "must be > 0")
    if o.deadline_s <= 0:
        raise InputError(where, "orchestration.deadline_s", "must be > 0")
    if o.overcommit < 0:
        raise InputError(where, "orchestration.overcommit", "must be >= 0")
    if o.mode == "async" and (o.async_.buffer_size <= 0 or o.async_.concurrency <= 0):
        raise InputError(where, "orchestration.async", "buffer_size and concurrency must be > 0")
    if s.selection.policy not in POLICY_NAMES:
        raise InputError(where, "selection.policy", f"unknown policy {s.selection.policy!r} "
                         f"(known: {', '.join(sorted(POLICY_NAMES))})")
    sel = s.selection
    for key, ok, need in (
            ("pool_factor", sel.pool_factor > 0, "must be > 0"),
            ("deadline_aware.safety", sel.deadline_aware.safety > 0, "must be > 0"),
            ("oort.alpha", sel.oort.alpha >= 0, "must be >= 0"),
            ("oort.epsilon", 0 <= sel.oort.epsilon <= 1, "must be in [0, 1]"),
            ("power_of_choice.d", sel.power_of_choice.d >= 1, "must be >= 1")):
        if not ok:
            raise InputError(where, f"selection.{key}", need)
    if o.async_.max_staleness < 0:
        raise InputError(where, "orchestration.async.max_staleness", "must be >= 0")
    if o.min_reports < 0:
        raise InputError(where, "orchestration.min_reports", "must be >= 0")
    for key in ("rounds", "virtual_time_s", "energy_j", "traffic_bytes"):
        value = getattr(s.stop, key)
        if value is not None and value <= 0:
            raise InputError(where, f"stop.{key}", f"must be > 0, got {value}")
    if s.stop.rounds is None and s.stop.virtual_time_s is None and s.stop.energy_j is None \
            and s.stop.traffic_bytes is None:
        raise InputError(where, "stop", "give at least one stopping rule")
    v = s.validation
    if v is not None:
        _check_file(where, "validation.devices", v.devices, base)
        if v.every_rounds <= 0 or v.sample <= 0:
            raise InputError(where, "validation", "every_rounds and sample must be > 0")
        if o.mode != "sync":
            raise InputError(where, "validation", "periodic validation replays synchronous "
                             "rounds; orchestration.mode is async")
    b = s.battery
    if not 0 <= b.abort_below_pct <= b.min_pct_to_join <= 100:
        raise InputError(where, "battery", "need 0 <= abort_below_pct <= min_pct_to_join <= 100")


def resolve_model(name: str, base: Path) -> ModelArch:
    """A catalogue name, or a config.json (or its folder) relative to the scenario file."""
    if name not in CATALOGUE and (base / name).exists():
        return load_model(str(base / name))
    return load_model(name)


def resolve_profile(name: str, base: Path) -> DeviceProfile:
    """A shipped profile name, or a profile YAML path relative to the scenario file."""
    candidate = base / name
    return load_profile(str(candidate) if candidate.suffix in (".yaml", ".yml") else name)


def _check_profile(where: str, key: str, name: str, base: Path) -> DeviceProfile:
    if Path(name).suffix in (".yaml", ".yml") and not (base / name).exists():
        raise InputError(where, key, f"file {name!r} does not exist (relative to {base}): "
                         "calibrate the device that stands for it (docs/devices.md), or name "
                         "a shipped profile")
    try:
        return resolve_profile(name, base)
    except InputError as err:
        raise InputError(where, key, f"{name!r}: {err.problem}" if err.where == "--device"
                         else str(err)) from None


def _check_file(where: str, key: str, name: str, base: Path) -> None:
    if not (base / name).is_file():
        raise InputError(where, key, f"file {name!r} does not exist (relative to {base})")


def resolved(s: Scenario, extra: dict[str, Any]) -> str:
    """The scenario with every default filled in, plus `extra` (seed, version, hashes)."""
    data = to_mapping(dataclasses.replace(s, source=""))
    data.pop("source", None)
    orch = data["orchestration"]
    orch["async"] = orch.pop("async_")
    data.update(extra)
    return yaml.safe_dump(data, sort_keys=False, width=100)
