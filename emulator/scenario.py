"""Scenario files: typed, defaults filled in, unknown keys rejected, checked as a whole.

A scenario names the fleet (device groups), the workload, data, network,
availability, battery, thermal, memory, server, orchestration, selection policy,
stopping rule and seed. `load_scenario` parses, applies `--set` overrides and
cross-checks; `resolved` writes it back with every default filled in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from emulator.dist import Dist
from profiles.device import DeviceProfile, load_profile
from profiles.errors import InputError
from profiles.models import CATALOGUE, ModelArch, load_model
from profiles.schema import from_mapping, load_yaml, to_mapping


@dataclass(frozen=True)
class Spread:
    """How clients of one group differ from the profile's nominal unit."""

    speed: Dist = Dist("lognormal", mean=1.0, cv=0.1, low=0.3, high=2.0)
    usable_ram: Dist = Dist("lognormal", mean=1.0, cv=0.05, low=0.5, high=1.5)
    background_load: Dist = Dist("uniform", low=0.0, high=0.2)


@dataclass(frozen=True)
class GroupNetwork:
    """Per-client link, drawn once per client; per-session jitter on top."""

    downlink_mbps: Dist = Dist("lognormal", mean=50.0, cv=0.6, low=1.0)
    uplink_mbps: Dist = Dist("lognormal", mean=20.0, cv=0.6, low=0.5)
    latency_ms: Dist = Dist("lognormal", mean=40.0, cv=0.5, low=1.0)
    session_jitter_cv: float = 0.2
    trace: str | None = None  # CSV time_s,downlink_mbps,uplink_mbps: a multiplier over time


@dataclass(frozen=True)
class GroupSetup:
    batch: int = 1
    seq: int = 128
    grad_accum: int = 1
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    activation_checkpointing: bool = False
    memory_efficient_attention: bool = False
    shard_budget_mb: float | None = None
    shard_encoding: Literal["fp32", "fp16", "int8", "int4"] = "fp16"
    shard_store: Literal["ram", "flash"] = "flash"
    serialization: Literal["raw", "npy", "npy64"] | None = None  # default: network's


@dataclass(frozen=True)
class Group:
    name: str
    profile: str
    count: int | None = None
    share: float | None = None
    setup: GroupSetup = GroupSetup()
    spread: Spread = Spread()
    network: GroupNetwork = GroupNetwork()
    lora_rank: Dist | None = None  # FlexLoRA: this group's ranks (default: workload's)
    plugged_share: float = 0.3  # share of the day this group's devices sit on a charger


@dataclass(frozen=True)
class Fleet:
    clients: int = 100
    groups: tuple[Group, ...] = ()


@dataclass(frozen=True)
class Workload:
    model: str = "gemma-3-270m"
    algorithm: Literal["fedavg", "fedprox", "flexlora", "splitlora", "local_only"] = "fedavg"
    method: Literal["full", "lora"] = "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    fedprox_mu: float = 0.01
    split_layer: int | None = None
    optimizer: Literal["adamw", "sgd"] = "adamw"


@dataclass(frozen=True)
class Data:
    examples_per_client: Dist = Dist("lognormal", mean=200.0, cv=1.0, low=1.0)
    dirichlet_alpha: float | None = None  # if set: sizes are Dirichlet shares of the total
    total_examples: int | None = None
    local_steps: int | None = 10  # optimizer steps per round; or derive from epochs
    local_epochs: float | None = None
    max_local_steps: int = 200


@dataclass(frozen=True)
class Network:
    serialization: Literal["raw", "npy", "npy64"] = "raw"


@dataclass(frozen=True)
class Diurnal:
    """Each client is on for a daily window of its own local time."""

    timezones_h: Dist = Dist("choice", values=(-8.0, -5.0, 0.0, 1.0, 5.5, 8.0, 9.0))
    window_start_h: Dist = Dist("uniform", low=0.0, high=24.0)
    window_length_h: Dist = Dist("uniform", low=4.0, high=12.0)


@dataclass(frozen=True)
class Availability:
    diurnal: Diurnal | None = None
    charging_only: bool = False
    plug_start_h: Dist = Dist("normal", mean=23.0, std=1.5)  # local time a charger goes on
    mean_session_s: float | None = 3600.0  # churn: mean online spell; null for none
    online_fraction: float = 0.8  # churn: share of the time a client is online
    dropout_per_hour: float = 0.0  # hazard of abandoning a session while training
    trace: str | None = None  # CSV client,start_s,end_s of online intervals


@dataclass(frozen=True)
class Battery:
    initial_pct: Dist = Dist("uniform", low=20.0, high=100.0)
    min_pct_to_join: float = 20.0
    abort_below_pct: float = 5.0
    charge_w: float = 15.0
    energy_aware_sleep: bool = False


@dataclass(frozen=True)
class Thermal:
    enabled: bool = True
    initial_c: float | None = None  # default: the profile's ambient


@dataclass(frozen=True)
class Server:
    aggregate_overhead_s: float = 0.5
    aggregate_mb_per_s: float = 500.0  # how fast the server folds in received updates
    flops_per_s: float = 1.0e14  # SplitLoRA's server-side layers


@dataclass(frozen=True)
class AsyncConfig:
    buffer_size: int = 10
    concurrency: int = 100
    max_staleness: int = 10


@dataclass(frozen=True)
class Orchestration:
    mode: Literal["sync", "async"] = "sync"
    clients_per_round: int = 10
    overcommit: float = 0.0
    deadline_s: float = 3600.0
    close_at_target: bool = True  # sync: close the round once clients_per_round reported
    min_reports: int = 1  # sync: fewer than this by the deadline and the round fails
    async_: AsyncConfig = AsyncConfig()


@dataclass(frozen=True)
class Selection:
    policy: str = "random"
    pool_factor: float = 10.0  # candidates drawn per slot to fill
    oort_alpha: float = 2.0
    oort_epsilon: float = 0.1
    power_of_choice_d: float = 3.0
    deadline_safety: float = 0.9


@dataclass(frozen=True)
class Stop:
    rounds: int | None = 10
    virtual_time_s: float | None = None
    energy_j: float | None = None
    traffic_bytes: float | None = None


@dataclass(frozen=True)
class Validation:
    """Periodic validation: every `every_rounds`-th round, `sample` of its sessions are
    replayed on the attached devices of `devices` while the run goes on."""

    devices: str  # a devices.yaml, relative to the scenario
    every_rounds: int = 10
    sample: int = 4
    recalibrate: bool = False  # correct the group's costs for the rest of the run


@dataclass(frozen=True)
class Scenario:
    name: str
    fleet: Fleet
    workload: Workload = Workload()
    data: Data = Data()
    network: Network = Network()
    availability: Availability = Availability()
    battery: Battery = Battery()
    thermal: Thermal = Thermal()
    server: Server = Server()
    orchestration: Orchestration = Orchestration()
    selection: Selection = Selection()
    stop: Stop = Stop()
    validation: Validation | None = None
    seed: int | None = None
    description: str = ""
    source: str = field(default="", compare=False)  # the file it came from

    @property
    def group_counts(self) -> list[int]:
        """Clients per group: counts as given, shares rounded by largest remainder."""
        n = self.fleet.clients
        fixed = [g.count for g in self.fleet.groups]
        if all(c is not None for c in fixed):
            return [int(c) for c in fixed if c is not None]
        shares = [g.share or 0.0 for g in self.fleet.groups]
        raw = [s * n for s in shares]
        counts = [int(r) for r in raw]
        order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
        for i in order[: n - sum(counts)]:
            counts[i] += 1
        return counts


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
    from emulator.policies import POLICIES

    if s.selection.policy not in POLICIES:
        raise InputError(where, "selection.policy", f"unknown policy {s.selection.policy!r} "
                         f"(known: {', '.join(sorted(POLICIES))})")
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
