"""Scenario configuration: what a scenario file says, as typed, frozen dataclasses.

Configuration only: nothing here runs anything. Every class ends in `Config` (but
the whole, `Scenario`) so that it is never mistaken for the runtime object it
configures (`fleet.Fleet`, `availability.Availability`, `edgetwin.profiles.workload.Workload`).
`edgetwin.emulator.scenario` loads and checks these from YAML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from edgetwin.emulator.dist import Dist
from edgetwin.emulator.selection.params import DeadlineAwareParams, OortParams, PowerOfChoiceParams


@dataclass(frozen=True)
class SpreadConfig:
    """How clients of one group differ from the profile's nominal unit."""

    speed: Dist = Dist("lognormal", mean=1.0, cv=0.1, low=0.3, high=2.0)
    usable_ram: Dist = Dist("lognormal", mean=1.0, cv=0.05, low=0.5, high=1.5)
    background_load: Dist = Dist("uniform", low=0.0, high=0.2)


@dataclass(frozen=True)
class NetworkTraceConfig:
    """A CSV `time_s,downlink_mbps,uplink_mbps`, piecewise constant and looped (period:
    the last time plus the mean step). `shape`:
    each client's drawn link is scaled by trace / trace mean (the group's distribution
    sets the level, the trace its changes); `absolute`: the trace is every client's link
    in Mbit/s. A bare file name means `shape`."""

    file: str
    mode: Literal["shape", "absolute"] = "shape"

    @classmethod
    def from_text(cls, file: str) -> NetworkTraceConfig:
        return cls(file)


def lognormal_with_median(median: float, cv: float, low: float) -> Dist:
    """A lognormal of coefficient of variation `cv` whose median is `median`."""
    return Dist("lognormal", mean=round(median * math.sqrt(1.0 + cv * cv), 2), cv=cv, low=low)


LinkKind = Literal["cellular", "wifi"]
# Each link kind's default per-client link: the Speedtest Global Index medians of
# December 2025 (mobile: 105.7 Mbit/s down, 14.8 up, 24 ms; fixed broadband, which
# phones and laptops at home reach over Wi-Fi: 118.6 down, 59.5 up, 9 ms), with
# latency to a regional cloud server 20 ms beyond Speedtest's nearest one (assumed),
# and a spread between clients of cv 0.6 (latency 0.5), assumed. docs/scenarios.md
# cites them.
LINK_DEFAULTS: dict[LinkKind, dict[str, Dist]] = {
    "cellular": {"downlink_mbps": lognormal_with_median(105.7, 0.6, 1.0),
                 "uplink_mbps": lognormal_with_median(14.8, 0.6, 0.5),
                 "latency_ms": lognormal_with_median(44.0, 0.5, 5.0)},
    "wifi": {"downlink_mbps": lognormal_with_median(118.6, 0.6, 1.0),
             "uplink_mbps": lognormal_with_median(59.5, 0.6, 0.5),
             "latency_ms": lognormal_with_median(29.0, 0.5, 2.0)},
}


@dataclass(frozen=True)
class GroupNetworkConfig:
    """Per-client link, drawn once per client; per-session jitter on top. Rates and
    latency not given are the link kind's defaults (LINK_DEFAULTS)."""

    link: LinkKind = "cellular"
    downlink_mbps: Dist = LINK_DEFAULTS["cellular"]["downlink_mbps"]
    uplink_mbps: Dist = LINK_DEFAULTS["cellular"]["uplink_mbps"]
    latency_ms: Dist = LINK_DEFAULTS["cellular"]["latency_ms"]
    session_jitter_cv: float = 0.2
    trace: NetworkTraceConfig | None = None


@dataclass(frozen=True)
class GroupSetupConfig:
    batch: int = 1
    seq: int = 128
    grad_accum: int = 1
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    autocast: Literal["fp16", "bf16"] | None = None  # PyTorch AMP over fp32 master weights
    activation_checkpointing: bool = False
    memory_efficient_attention: bool = False
    shard_budget_mb: float | None = None
    shard_encoding: Literal["fp32", "fp16", "int8", "int4"] = "fp16"
    shard_store: Literal["ram", "flash"] = "flash"
    serialization: Literal["raw", "npy", "npy64"] | None = None  # default: network's


@dataclass(frozen=True)
class GroupConfig:
    name: str
    profile: str
    count: int | None = None
    share: float | None = None
    setup: GroupSetupConfig = GroupSetupConfig()
    spread: SpreadConfig = SpreadConfig()
    network: GroupNetworkConfig = GroupNetworkConfig()
    lora_rank: Dist | None = None  # FlexLoRA: this group's ranks (default: workload's)
    plugged_share: float = 0.3  # share of the day this group's devices sit on a charger


@dataclass(frozen=True)
class FleetConfig:
    clients: int = 100
    groups: tuple[GroupConfig, ...] = ()


@dataclass(frozen=True)
class WorkloadConfig:
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
class DataConfig:
    examples_per_client: Dist = Dist("lognormal", mean=200.0, cv=1.0, low=1.0)
    dirichlet_alpha: float | None = None  # if set: sizes are Dirichlet shares of the total
    total_examples: int | None = None
    # optimizer steps per session, or derived from epochs (one of the two; neither given:
    # DEFAULT_LOCAL_STEPS); `max_local_steps` caps only steps derived from epochs
    local_steps: int | None = None
    local_epochs: float | None = None
    max_local_steps: int = 200


@dataclass(frozen=True)
class NetworkConfig:
    serialization: Literal["raw", "npy", "npy64"] = "raw"


@dataclass(frozen=True)
class DiurnalConfig:
    """Each client is on for a daily window of its own local time."""

    timezones_h: Dist = Dist("choice", values=(-8.0, -5.0, 0.0, 1.0, 5.5, 8.0, 9.0))
    window_start_h: Dist = Dist("uniform", low=0.0, high=24.0)
    window_length_h: Dist = Dist("uniform", low=4.0, high=12.0)


@dataclass(frozen=True)
class AvailabilityConfig:
    diurnal: DiurnalConfig | None = None
    # production FL trains only on idle, charging devices (Bonawitz et al. 2019; FedScale's
    # availability data counts a device as available while charging): false trains on
    # battery whenever a client is online
    charging_only: bool = True
    plug_start_h: Dist = Dist("normal", mean=23.0, std=1.5)  # local time a charger goes on
    mean_session_s: float | None = 3600.0  # churn: mean online spell; null for none
    online_fraction: float = 0.8  # churn: share of the time a client is online
    dropout_per_hour: float = 0.0  # hazard of abandoning a session while training
    trace: str | None = None  # CSV client,start_s,end_s of online intervals


@dataclass(frozen=True)
class BatteryConfig:
    initial_pct: Dist = Dist("uniform", low=20.0, high=100.0)
    min_pct_to_join: float = 20.0
    abort_below_pct: float = 5.0
    charge_w: float | None = None  # one charger for every device; null: each profile's own
    energy_aware_sleep: bool = False


@dataclass(frozen=True)
class ThermalConfig:
    enabled: bool = True
    initial_c: float | None = None  # default: the profile's ambient
    # each device's surroundings at its own profile's full-throttle temperature: it starts
    # there and never cools below it (a heat wave, a phone in a car), so it throttles
    hot: bool = False


@dataclass(frozen=True)
class VariabilityConfig:
    """Each session's compute varies around its profile's prediction by the profile's
    `compute.session_cv` (a lognormal factor of mean 1, drawn per session); off, every
    session takes exactly the prediction (the deterministic twin)."""

    enabled: bool = True


@dataclass(frozen=True)
class ServerConfig:
    aggregate_overhead_s: float = 0.5
    aggregate_mb_per_s: float = 500.0  # how fast the server folds in received updates
    flops_per_s: float = 1.0e14  # SplitLoRA's server-side layers


@dataclass(frozen=True)
class AsyncConfig:
    buffer_size: int = 10
    concurrency: int = 100
    max_staleness: int = 10


@dataclass(frozen=True)
class OrchestrationConfig:
    mode: Literal["sync", "async"] = "sync"
    clients_per_round: int = 10
    overcommit: float = 0.0
    deadline_s: float = 3600.0
    close_at_target: bool = True  # sync: close the round once clients_per_round reported
    min_reports: int = 1  # sync: fewer than this by the deadline and the round fails
    async_: AsyncConfig = field(default=AsyncConfig(), metadata={"key": "async"})


@dataclass(frozen=True)
class SelectionConfig:
    """Which policy ranks the check-in pool, and each policy's own parameters (only the
    named policy's are used)."""

    policy: str = "random"
    pool_factor: float = 10.0  # candidates drawn per slot to fill
    deadline_aware: DeadlineAwareParams = DeadlineAwareParams()
    oort: OortParams = OortParams()
    power_of_choice: PowerOfChoiceParams = PowerOfChoiceParams()


DEFAULT_LOCAL_STEPS = 10
DEFAULT_STOP_ROUNDS = 10  # the stop rule of a scenario that gives none


@dataclass(frozen=True)
class StopConfig:
    """The run stops at the first rule reached; no rule given: DEFAULT_STOP_ROUNDS."""

    rounds: int | None = None
    virtual_time_s: float | None = None
    energy_j: float | None = None
    traffic_bytes: float | None = None


@dataclass(frozen=True)
class ValidationConfig:
    """Periodic validation: every `every_rounds`-th round, `sample` of its sessions are
    replayed on the attached devices of `devices` while the run goes on."""

    devices: str  # a devices.yaml, relative to the scenario
    every_rounds: int = 10
    sample: int = 4
    recalibrate: bool = False  # correct the group's costs for the rest of the run


@dataclass(frozen=True)
class Scenario:
    name: str
    fleet: FleetConfig
    workload: WorkloadConfig = WorkloadConfig()
    data: DataConfig = DataConfig()
    network: NetworkConfig = NetworkConfig()
    availability: AvailabilityConfig = AvailabilityConfig()
    battery: BatteryConfig = BatteryConfig()
    thermal: ThermalConfig = ThermalConfig()
    variability: VariabilityConfig = VariabilityConfig()
    server: ServerConfig = ServerConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()
    selection: SelectionConfig = SelectionConfig()
    stop: StopConfig = StopConfig()
    validation: ValidationConfig | None = None
    seed: int | None = None
    description: str = ""
    # not keys of the file: where it came from, and what the loader accepted but a reader
    # should know (a key the mode ignores, ...), printed and listed in report.md
    source: str = field(default="", compare=False, metadata={"internal": True})
    warnings: tuple[str, ...] = field(default=(), compare=False, metadata={"internal": True})
    given: frozenset[str] = field(default=frozenset(), compare=False,
                                  metadata={"internal": True})  # the dotted keys the file set
    # the groups whose profile has no battery: on mains all day, their plugged_share moot
    mains_groups: frozenset[int] = field(default=frozenset(), compare=False,
                                         metadata={"internal": True})

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

    @property
    def expected_sessions(self) -> int:
        """About how many sessions a run of fixed rounds records (100 rounds where the
        stop names none)."""
        o = self.orchestration
        per = math.ceil(o.clients_per_round * (1 + o.overcommit)) if o.mode == "sync" else \
            o.async_.buffer_size + o.async_.concurrency // 10
        return min(per * (self.stop.rounds or 100) + o.async_.concurrency, 50_000_000)
