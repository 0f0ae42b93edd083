"""Cross-field checks of a parsed scenario, each naming the key path that is wrong.

Types, unknown keys and each distribution's own keys are checked as the file is parsed
(`edgetwin.profiles.schema`); what needs several keys at once, the profiles, the model and the
files a scenario names is checked here.
"""

from __future__ import annotations

from pathlib import Path

from edgetwin.common.errors import InputError
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.dist import Dist
from edgetwin.emulator.selection.params import POLICY_NAMES
from edgetwin.emulator.training import SETUP_KEYS, method_for, setup_for
from edgetwin.profiles.device import DeviceProfile, load_profile
from edgetwin.profiles.models import CATALOGUE, ModelArch, load_model
from edgetwin.profiles.modes import split_mode

MAX_OVERCOMMIT = 1.0  # select at most twice clients_per_round: above, a percentage was meant


def check_scenario(s: Scenario, base: Path) -> None:
    """Cross-field checks, each naming the key path that is wrong."""
    where = s.source or "scenario"
    if s.fleet.clients <= 0:
        raise InputError(where, "fleet.clients", f"must be > 0, got {s.fleet.clients}")
    if not s.fleet.groups:
        raise InputError(where, "fleet.groups", "needs at least one device group")
    names = [g.name for g in s.fleet.groups]
    for i, name in enumerate(names):
        if "," in name or any(ord(ch) < 32 for ch in name):
            raise InputError(where, f"fleet.groups[{i}].name", f"{name!r} holds a comma or a "
                             "control character: client_sessions.csv writes it unquoted")
        if name in names[:i]:
            raise InputError(where, f"fleet.groups[{i}].name", f"{name!r} is already the name "
                             f"of fleet.groups[{names.index(name)}]: each group needs its own")
    arch = _check_model(where, s.workload.model, base)
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
            floor = d.lower_bound()
            if floor < 0 or (floor == 0 and name != "latency_ms"):
                raise InputError(where, f"{key}.network.{name}",
                                 f"must be {'>= 0' if name == 'latency_ms' else '> 0'}, "
                                 f"got a distribution reaching {floor}")
        if g.network.trace:
            _check_file(where, f"{key}.network.trace.file", g.network.trace.file, base)
        for name in ("batch", "seq", "grad_accum"):
            if getattr(g.setup, name) <= 0:
                raise InputError(where, f"{key}.setup.{name}", "must be > 0")
        for name in ("speed", "usable_ram"):
            d = getattr(g.spread, name)
            if d.lower_bound() < 0 or (d.lower_bound() == 0 and d.dist != "lognormal"):
                raise InputError(where, f"{key}.spread.{name}", "must be > 0, got a "
                                 f"distribution reaching {d.lower_bound()}")
        load = g.spread.background_load
        if not 0 <= load.lower_bound() <= load.upper_bound() < 1:
            raise InputError(where, f"{key}.spread.background_load", "must stay in [0, 1), "
                             f"got a distribution from {load.lower_bound()} to "
                             f"{load.upper_bound()}")
        if g.network.session_jitter_cv < 0:
            raise InputError(where, f"{key}.network.session_jitter_cv", "must be >= 0")
        if g.lora_rank is not None and g.lora_rank.lower_bound() < 1:
            raise InputError(where, f"{key}.lora_rank", "must be >= 1, got a distribution "
                             f"reaching {g.lora_rank.lower_bound()}")
        try:
            setup_for(s, g).validate()
        except InputError as err:
            name = SETUP_KEYS.get(err.key, err.key)
            raise InputError(where, name if "." in name else f"{key}.setup.{name}",
                             err.problem) from None
        if arch.context_length and g.setup.seq > arch.context_length:
            raise InputError(where, f"{key}.setup.seq", f"{g.setup.seq} is beyond the "
                             f"{arch.context_length} positions of {s.workload.model}")
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
    if s.workload.algorithm == "splitlora" and s.workload.split_layer is None:
        raise InputError(where, "workload.split_layer", "splitlora needs a split layer")
    if s.workload.lora_rank <= 0:
        raise InputError(where, "workload.lora_rank", "must be > 0")
    if s.workload.lora_alpha <= 0:
        raise InputError(where, "workload.lora_alpha", "must be > 0")
    try:
        method_for(s, s.workload.lora_rank).validate(arch)
    except InputError as err:
        raise InputError(where, f"workload.{err.key}", err.problem) from None
    if s.seed is not None and s.seed < 0:
        raise InputError(where, "seed", f"must be >= 0, got {s.seed}")
    for name, ok, need in (
            ("aggregate_overhead_s", s.server.aggregate_overhead_s >= 0, ">= 0"),
            ("aggregate_mb_per_s", s.server.aggregate_mb_per_s > 0, "> 0"),
            ("flops_per_s", s.server.flops_per_s > 0, "> 0")):
        if not ok:
            raise InputError(where, f"server.{name}", f"must be {need}")
    if s.battery.charge_w is not None and s.battery.charge_w < 0:
        raise InputError(where, "battery.charge_w", "must be >= 0")
    if s.thermal.initial_c is not None and not -40 <= s.thermal.initial_c <= 120:
        raise InputError(where, "thermal.initial_c", "must be a device temperature, -40 to "
                         f"120 C, got {s.thermal.initial_c}")
    data = s.data
    if data.local_steps is not None and data.local_epochs is not None:
        raise InputError(where, "data.local_epochs", "give local_steps or local_epochs, not "
                         f"both (data.local_steps is {data.local_steps})")
    if data.local_steps is not None and data.local_steps <= 0:
        raise InputError(where, "data.local_steps", "must be > 0")
    if data.local_epochs is not None and data.local_epochs <= 0:
        raise InputError(where, "data.local_epochs", "must be > 0")
    if data.max_local_steps <= 0:
        raise InputError(where, "data.max_local_steps", "must be > 0")
    if data.local_steps is not None and data.local_steps > data.max_local_steps:
        raise InputError(where, "data.local_steps", f"{data.local_steps} is above "
                         f"data.max_local_steps ({data.max_local_steps}): raise the cap too")
    if s.data.dirichlet_alpha is not None and not s.data.total_examples:
        raise InputError(where, "data.total_examples", "a Dirichlet split needs the total")
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
    if not 0 <= o.overcommit <= MAX_OVERCOMMIT:
        raise InputError(where, "orchestration.overcommit",
                         f"{o.overcommit:g} is not a share in [0, {MAX_OVERCOMMIT:g}] (0.3 "
                         f"selects 30 % more clients than clients_per_round; {o.overcommit:g} "
                         f"would select {1 + o.overcommit:g} times as many)")
    if o.clients_per_round > s.fleet.clients and "orchestration.clients_per_round" in s.given \
            and o.mode == "sync":
        raise InputError(where, "orchestration.clients_per_round",
                         f"{o.clients_per_round} is more than the fleet's "
                         f"{s.fleet.clients} clients")
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


def _check_model(where: str, name: str, base: Path) -> ModelArch:
    try:
        return resolve_model(name, base)
    except InputError as err:
        raise InputError(where, "workload.model", err.problem) from None


def resolve_model(name: str, base: Path) -> ModelArch:
    """A catalogue name, or a config.json (or its folder) relative to the scenario file."""
    if name not in CATALOGUE and (base / name).exists():
        return load_model(str(base / name))
    return load_model(name)


def resolve_profile(name: str, base: Path) -> DeviceProfile:
    """A shipped profile name, or a profile YAML path relative to the scenario file;
    either may end in `@MODE`."""
    file, mode = split_mode(name)
    candidate = base / file
    if candidate.suffix in (".yaml", ".yml"):
        return load_profile(str(candidate) + (f"@{mode}" if mode else ""))
    return load_profile(name)


def _check_profile(where: str, key: str, name: str, base: Path) -> DeviceProfile:
    file, _ = split_mode(name)
    if Path(file).suffix in (".yaml", ".yml") and not (base / file).exists():
        raise InputError(where, key, f"file {file!r} does not exist (relative to {base}): "
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
