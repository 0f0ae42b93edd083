"""Scenario files: parsed into `edgetwin.emulator.config`, defaults filled in where the user gave
none, contradictions refused or warned about, and written back as what ran.

A scenario names the fleet (device groups), the workload, data, network,
availability, battery, thermal, memory, server, orchestration, selection policy,
stopping rule and seed. `load_scenario` parses, applies `--set` overrides and
checks; `resolved` writes it back with every default filled in and only the keys
that took effect, so that a run folder's copy loads and runs again as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from edgetwin.common.errors import InputError
from edgetwin.emulator.catalogue import scenario_path
from edgetwin.emulator.config import (
    DEFAULT_LOCAL_STEPS,
    DEFAULT_STOP_ROUNDS,
    LINK_DEFAULTS,
    Scenario,
)
from edgetwin.emulator.scenario_checks import check_scenario, resolve_model, resolve_profile
from edgetwin.profiles.schema import dump_yaml, from_mapping, load_yaml, parse_yaml, to_mapping

__all__ = ["RUN_KEY", "check_scenario", "load_scenario", "parse_scenario", "parse_value",
           "resolve_model", "resolve_profile", "resolved", "set_key"]

RUN_KEY = "run"  # a run folder's record of what ran (version, profile hashes), not read
SYNC_ONLY = ("clients_per_round", "overcommit", "close_at_target", "min_reports")
ALGORITHM_KEYS = {"fedprox_mu": "fedprox", "split_layer": "splitlora"}  # key: its algorithm
STOP_RULES = ("rounds", "virtual_time_s", "energy_j", "traffic_bytes")
POLICY_PARAMS = ("deadline_aware", "oort", "power_of_choice")  # each policy's own section


def load_scenario(path: Path, overrides: list[str] | None = None,
                  seed: int | None = None,
                  values: Sequence[tuple[str, Any, str]] = ()) -> Scenario:
    """Parse, override (`a.b.c=value`, value parsed as YAML; then `values`, each a
    dotted key, its parsed value and where it was given), and check a scenario; files
    it names are relative to its folder. A run folder's record (`run:`) is set aside,
    but a profile that changed since that run is a warning. A bare name that is no file
    is a shipped scenario's (`edgetwin scenarios list`)."""
    path = scenario_path(path)
    where = str(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise InputError(where, "(top level)", "expected a mapping")
    record = data.pop(RUN_KEY, None)
    if record is not None and not isinstance(record, dict):
        raise InputError(where, RUN_KEY, "expected a mapping (written by edgetwin)")
    if record is not None and "inputs/" in path.read_text() and \
            not (path.parent / "inputs").is_dir():
        raise InputError(str(path.parent), "inputs/", "missing: the run folder's copies of "
                         "the files its scenario names are gone (copy a run folder whole)")
    for item in overrides or []:
        if "=" not in item:
            raise InputError("--set", item, "expected dotted.key=value")
        key, raw = item.split("=", 1)
        set_key(data, key, parse_value(raw), "--set")
    for key, value, given_in in values:
        set_key(data, key, value, given_in)
    if seed is not None:
        data["seed"] = seed
    scenario = parse_scenario(data, where, path.parent)
    changed = _changed_profiles(scenario, path.parent, (record or {}).get("profiles_sha256"))
    return dataclasses.replace(scenario, warnings=(*scenario.warnings, *changed))


def parse_scenario(data: dict[str, Any], where: str, base: Path) -> Scenario:
    """A scenario mapping to a checked `Scenario`; `where` names it in messages, `base`
    is the folder its file names are relative to."""
    given = frozenset(_given(data))
    scenario = from_mapping(Scenario, data, where)
    scenario = _fill_defaults(dataclasses.replace(scenario, source=where, given=given), given)
    check_scenario(scenario, base)
    mains = frozenset(i for i, g in enumerate(scenario.fleet.groups)
                      if resolve_profile(g.profile, base).battery is None)
    scenario = dataclasses.replace(scenario, mains_groups=mains)
    return dataclasses.replace(scenario, warnings=tuple(_warnings(scenario, given)))


def _given(data: Any, prefix: str = "") -> set[str]:
    """The dotted keys the user set to something (a null is not a setting); list items
    as `fleet.groups[0].lora_rank`."""
    out: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if value is not None:
                out.add(path)
                out |= _given(value, path)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out |= _given(value, f"{prefix}[{i}]")
    return out


def _fill_defaults(s: Scenario, given: frozenset[str]) -> Scenario:
    """Defaults that depend on what else was given: a stop rule and a step count only
    where none was given, each group's link rates from its link kind, and no churn or
    charger schedule over a recorded availability trace unless asked."""
    if not any(f"stop.{rule}" in given for rule in STOP_RULES):
        s = dataclasses.replace(s, stop=dataclasses.replace(s.stop, rounds=DEFAULT_STOP_ROUNDS))
    if "data.local_steps" not in given and "data.local_epochs" not in given:
        steps = min(DEFAULT_LOCAL_STEPS, s.data.max_local_steps)
        s = dataclasses.replace(s, data=dataclasses.replace(s.data, local_steps=steps))
    groups = list(s.fleet.groups)
    for i, g in enumerate(groups):  # a link kind's rates where the group gave none
        key = f"fleet.groups[{i}].network"
        kind = LINK_DEFAULTS[g.network.link]
        fill: dict[str, Any] = {name: dist for name, dist in kind.items()
                                if f"{key}.{name}" not in given}
        groups[i] = dataclasses.replace(g, network=dataclasses.replace(g.network, **fill))
    s = dataclasses.replace(s, fleet=dataclasses.replace(s.fleet, groups=tuple(groups)))
    churn = ("availability.mean_session_s", "availability.online_fraction")
    if "availability.trace" in given and not any(k in given for k in churn):
        s = dataclasses.replace(s, availability=dataclasses.replace(s.availability,
                                                                    mean_session_s=None))
    if "availability.trace" in given and "availability.charging_only" not in given:
        # a recorded trace says when a device could train (FedScale's: while charging)
        s = dataclasses.replace(s, availability=dataclasses.replace(s.availability,
                                                                    charging_only=False))
    return s


def _warnings(s: Scenario, given: frozenset[str]) -> list[str]:
    """Keys that were given but take no effect, one line each, naming the key (not the
    file: a run folder's copy of the scenario warns the same)."""
    out = []
    o = s.orchestration
    if o.mode == "async":
        out += [f"orchestration.{k}: applies to synchronous rounds only; "
                "orchestration.mode is async, so it is ignored"
                for k in SYNC_ONLY if f"orchestration.{k}" in given]
    elif "orchestration.async" in given:
        out.append("orchestration.async: applies to asynchronous aggregation only; "
                   "orchestration.mode is sync, so it is ignored")
    out += [f"selection.{key}: parameters of the {key} policy; selection.policy "
            f"is {s.selection.policy}, so they are ignored"
            for key in POLICY_PARAMS
            if f"selection.{key}" in given and s.selection.policy != key]
    if "availability.trace" in given and "availability.diurnal" in given:
        out.append("availability.diurnal: a recorded availability.trace decides "
                   "when clients are online, so the diurnal windows are ignored")
    if s.data.dirichlet_alpha is not None and "data.examples_per_client" in given:
        out.append("data.examples_per_client: data.dirichlet_alpha splits "
                   "data.total_examples instead, so it is ignored")
    algorithm = s.workload.algorithm
    for key, needs in ALGORITHM_KEYS.items():
        if f"workload.{key}" in given and algorithm != needs:
            out.append(f"workload.{key}: applies to {needs}; workload.algorithm is "
                       f"{algorithm}, so it is ignored")
    for i, g in enumerate(s.fleet.groups):
        key = f"fleet.groups[{i}]"
        if f"{key}.lora_rank" in given and algorithm != "flexlora":
            out.append(f"{key}.lora_rank: a group's own ranks apply to flexlora; "
                       f"workload.algorithm is {algorithm}, so it is ignored")
        if i in s.mains_groups and f"{key}.plugged_share" in given and g.plugged_share < 1:
            out.append(f"{key}.plugged_share: {g.profile} has no battery and runs on mains "
                       "all day, so this is ignored")
        if g.network.trace is not None and g.network.trace.mode == "absolute":
            out += [f"{key}.network.{name}: network.trace.mode is absolute, so the trace is "
                    "every client's link and this is ignored"
                    for name in ("downlink_mbps", "uplink_mbps")
                    if f"{key}.network.{name}" in given]
    return out


def _changed_profiles(s: Scenario, base: Path, recorded: Any) -> list[str]:
    if not isinstance(recorded, dict):
        return []
    out = []
    for g in s.fleet.groups:
        then = recorded.get(g.profile)
        if then is not None and resolve_profile(g.profile, base).sha256 != then:
            out.append(f"fleet.groups: profile {g.profile!r} changed since this "
                       "run was simulated (its sha256 differs from run.profiles_sha256)")
    return out


def set_key(data: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set the dotted `key` of a scenario mapping (list items named by index), as `--set`
    does; `where` names the flag in messages."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(parts[:depth])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise InputError(where, key, f"{part!r} is not an index of {here} "
                                 f"({len(node)} items: 0 to {len(node) - 1})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise InputError(where, key, f"{here} is {node!r}, not a mapping or a list")


def parse_value(raw: str) -> Any:
    """A `--set` value: YAML, or the text itself where it is not YAML."""
    try:
        return parse_yaml(raw)
    except yaml.YAMLError:
        return raw


def resolved(s: Scenario, record: dict[str, Any]) -> str:
    """The scenario as it ran: every default filled in where it takes effect, every key
    the file gave (so that it warns the same when run again), and `record` (version,
    hashes) under `run:`."""
    data = to_mapping(s)

    def drop(section: str, key: str) -> None:
        if f"{section}.{key}" not in s.given:
            data[section].pop(key)

    for key in (SYNC_ONLY if s.orchestration.mode == "async" else ("async",)):
        drop("orchestration", key)
    for key in POLICY_PARAMS:
        if s.selection.policy != key:
            drop("selection", key)
    for key, needs in ALGORITHM_KEYS.items():
        if s.workload.algorithm != needs:
            drop("workload", key)
    for i, g in enumerate(s.fleet.groups):
        if i in s.mains_groups and f"fleet.groups[{i}].plugged_share" not in s.given:
            data["fleet"]["groups"][i].pop("plugged_share")  # a board is on mains
        if g.network.trace is not None and g.network.trace.mode == "absolute":
            for key in ("downlink_mbps", "uplink_mbps"):  # the trace is the link
                if f"fleet.groups[{i}].network.{key}" not in s.given:
                    data["fleet"]["groups"][i]["network"].pop(key)
    for key in ("local_steps", "local_epochs", "dirichlet_alpha", "total_examples"):
        if data["data"][key] is None:
            data["data"].pop(key)
    if s.data.dirichlet_alpha is not None:
        drop("data", "examples_per_client")
    data["stop"] = {k: v for k, v in data["stop"].items() if v is not None}
    data[RUN_KEY] = record
    return dump_yaml(data, width=100)
