"""Device profiles: what each op kind costs on a device, and the device facts around it.

Every number carries provenance: an entry in `provenance` whose key is the number's
dotted path or a prefix of it says where it came from (calibrated here, imported
from a trainer's log, a published measurement, a spec sheet, or an assumption), when,
and how well it fits.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from edgetwin.common.errors import InputError
from edgetwin.profiles.modes import OperatingMode, in_mode, split_mode
from edgetwin.profiles.ops import COMPUTE_KINDS
from edgetwin.profiles.schema import from_mapping, load_yaml, to_mapping

SCHEMA_VERSION = 1
ProvenanceKind = Literal["calibrated", "imported", "published", "spec", "assumed"]


@dataclass(frozen=True)
class OpCost:
    """Roofline latency of one op: `overhead_s x kernels + max(flops / (rate * eff),
    bytes / bytes_per_s)`, where a product's efficiency falls for small dimensions:
    eff = 1 / (1 + m_half / m + k_half / k + n_half / n) (1 for other kinds). The rate is
    `flops_per_s` (fp32), or the op's precision's rate where the device has one of its
    own (tensor cores: `precision_flops_per_s: {bf16: ..., fp16: ..., tf32: ...}`)."""

    flops_per_s: float
    bytes_per_s: float
    overhead_s: float = 0.0  # per kernel launch
    busy_power_w: float = 0.0  # whole-device power while this kind of op runs
    m_half: float = 0.0
    k_half: float = 0.0
    n_half: float = 0.0
    bytes_half: float = 0.0  # bandwidth halves for ops this small (one thread, cold start)
    precision_flops_per_s: dict[str, float] = field(default_factory=dict)

    def rate(self, dtype: str = "fp32") -> float:
        """FLOP/s for ops computed in `dtype` (fp32's rate where it has none of its own)."""
        return self.precision_flops_per_s.get(dtype, self.flops_per_s)

    def latency_s(self, flops: float, nbytes: float,
                  mkn: tuple[int, int, int] | None = None, kernels: int = 1,
                  dtype: str = "fp32") -> float:
        rate = self.rate(dtype)
        if mkn is not None:
            m, k, n = mkn
            rate /= 1.0 + self.m_half / m + self.k_half / k + self.n_half / n
        bw = self.bytes_per_s / (1.0 + self.bytes_half / nbytes) if nbytes > 0 else \
            self.bytes_per_s
        return self.overhead_s * kernels + max(flops / rate, nbytes / bw)


@dataclass(frozen=True)
class MemorySpec:
    ram_mb: float
    usable_ram_mb: float  # what one app may hold before the OS kills it
    runtime_overhead_mb: float  # the trainer process before any tensor (interpreter, libraries)
    tensors_in_rss: bool = True  # false where tensors live in accelerator memory outside RSS
    # share of a step's freed activations and gradients the allocator keeps resident:
    # glibc's heap keeps the holes they leave and places the next step's beside them
    # (0: all returned)
    heap_retention: float = 0.0


@dataclass(frozen=True)
class StorageSpec:
    read_mb_per_s: float
    write_mb_per_s: float


@dataclass(frozen=True)
class NetworkSpec:
    downlink_mbps: float
    uplink_mbps: float
    rtt_ms: float


@dataclass(frozen=True)
class PowerSpec:
    idle_w: float
    io_w: float  # while waiting on storage or the network
    # drain while idle, screen off, off the charger, between sessions (what a battery
    # loses while its device waits for the next round)
    standby_w: float


@dataclass(frozen=True)
class BatterySpec:
    capacity_wh: float
    nominal_voltage_v: float
    # the device's own charger, averaged over a full charge (a phone's peak rate lasts
    # minutes); the share of it kept when hot falls linearly from the thermal
    # throttle_start_c to `hot_charge_share` at throttle_full_c (phones cut their charge
    # rate as a thermal mitigation)
    charge_w: float
    hot_charge_share: float = 1.0


@dataclass(frozen=True)
class ThermalSpec:
    """First-order model: dT/dt = (P * resistance - (T - ambient)) / time_constant.

    Above `throttle_start_c` speed falls linearly to `min_speed_factor` at `throttle_full_c`.
    Throttling is DVFS: clocks and voltage fall together, so busy power falls with the
    speed factor to the power `power_exponent` (>= 1: a step never costs more energy
    throttled than cold).
    """

    ambient_c: float
    resistance_c_per_w: float
    time_constant_s: float
    throttle_start_c: float
    throttle_full_c: float
    min_speed_factor: float
    power_exponent: float = 1.0


@dataclass(frozen=True)
class SessionCost:
    """What a training session costs beyond its steps, and how much it varies on this
    device. Written under `compute:` beside the op costs (`compute.session_cv`, ...).

    A session's compute is `session_setup_s + session_setup_s_per_mparam x M` (building
    the model of M million parameters, loading the payload) + the first step's extra
    (`first_step_extra` of a step: allocations faulted in, lazy initialisation) + its
    steps. That compute varies from session to session around the prediction with
    `session_cv` (lognormal, mean 1: the emulator draws it per session); one step
    around its session's mean with `step_cv`."""

    session_cv: float = 0.0
    step_cv: float = 0.0
    session_setup_s: float = 0.0
    session_setup_s_per_mparam: float = 0.0
    first_step_extra: float = 0.0

    def setup_s(self, total_params: int, step_s: float) -> float:
        """A session's fixed cost beyond its steps, at speed 1."""
        return (self.session_setup_s + self.session_setup_s_per_mparam * total_params / 1e6
                + self.first_step_extra * step_s)


MAX_CV = 2.0
SESSION_KEYS = tuple(f.name for f in dataclasses.fields(SessionCost))


@dataclass(frozen=True)
class CalibrationLoad:
    """What else ran on the device while it was calibrated: the share of its CPUs other
    processes used, and how much a fixed probe's repeats spread (a busy core shows as a
    spread), measured before and after; `probe_s` is the probe's median time, which a
    later replay compares with its own to see whether the device has changed."""

    other_cpu_share_before: float
    other_cpu_share_after: float
    probe_spread_before: float
    probe_spread_after: float
    probe_s: float
    busy: bool


@dataclass(frozen=True)
class Provenance:
    kind: ProvenanceKind
    source: str
    date: str
    note: str = ""
    fit_error: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceProfile:
    schema_version: int
    name: str
    description: str
    device_class: Literal["phone", "board", "laptop", "server"]
    identity: dict[str, str]
    compute: dict[str, OpCost]
    memory: MemorySpec
    storage: StorageSpec
    network: NetworkSpec
    power: PowerSpec
    thermal: ThermalSpec
    provenance: dict[str, Provenance]
    battery: BatterySpec | None = None
    # "queued" where kernels run asynchronously (a GPU): the host's launch overheads
    # overlap the device's work, and a step costs the larger of the two sums.
    launch: Literal["synchronous", "queued"] = "synchronous"
    # the operating mode the figures above describe, and the device's other modes as
    # scales on them (edgetwin.profiles.modes); `name@mode` loads the profile in that mode
    mode: str = ""
    modes: dict[str, OperatingMode] = field(default_factory=dict)
    load: CalibrationLoad | None = None  # a calibrated profile's measuring conditions
    # read from and written under `compute:` (parse_profile, to_data)
    session: SessionCost = field(default=SessionCost(), metadata={"internal": True})

    def to_data(self) -> dict[str, Any]:
        """The YAML mapping: the session's costs under `compute:` before the op costs (zero
        ones left out), `load` only where measured."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.metadata.get("internal") or (f.name == "load" and self.load is None):
                continue
            out[f.name] = getattr(self, f.name)
        session = {k: v for k, v in to_mapping(self.session).items() if v}
        out["compute"] = {**session, **{k: to_mapping(c) for k, c in self.compute.items()}}
        return out

    def op_cost(self, kind: str, phase: str | None = None, impl: str = "") -> OpCost:
        """The most specific entry: `kind.impl.phase`, `kind.impl`, `kind.phase`, `kind`,
        then `default`."""
        if phase == "recompute":
            phase = "forward"
        keys = []
        if impl:
            keys += [f"{kind}.{impl}.{phase}", f"{kind}.{impl}"]
        keys += [f"{kind}.{phase}", kind]
        for key in keys:
            if key in self.compute:
                return self.compute[key]
        return self.compute["default"]

    @property
    def sha256(self) -> str:
        """Hash of the profile's content, recorded beside every result it shaped."""
        import yaml

        text = yaml.safe_dump(to_mapping(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def parse_profile(data: Any, where: str) -> DeviceProfile:
    """Check and build a profile from parsed YAML; `where` names the file in errors."""
    session = SessionCost()
    if isinstance(data, dict) and isinstance(data.get("compute"), dict):
        compute = data["compute"]
        scalars = {k: v for k, v in compute.items() if k in SESSION_KEYS}
        if scalars:
            session = from_mapping(SessionCost, scalars, where, "compute")
            data = {**data, "compute": {k: v for k, v in compute.items()
                                        if k not in SESSION_KEYS}}
    profile = dataclasses.replace(from_mapping(DeviceProfile, data, where), session=session)
    if profile.schema_version != SCHEMA_VERSION:
        raise InputError(where, "schema_version",
                         f"this edgetwin reads version {SCHEMA_VERSION}, "
                         f"got {profile.schema_version}")
    missing = [k for k in COMPUTE_KINDS if k not in profile.compute]
    if missing and "default" not in profile.compute:
        raise InputError(where, "compute",
                         f"no cost for op kind {missing[0]!r} and no 'default' entry")
    for key in profile.compute:
        parts = key.split(".")
        if key != "default" and (parts[0] not in COMPUTE_KINDS or len(parts) > 3 or (
                len(parts) == 3 and parts[2] not in ("forward", "backward"))):
            raise InputError(where, f"compute.{key}",
                             f"unknown op kind (known: {', '.join(COMPUTE_KINDS)}, default; "
                             "as KIND, KIND.PHASE, KIND.IMPL or KIND.IMPL.PHASE)")
    mapping = to_mapping(profile)
    for path, value in _numbers(mapping):
        if path.startswith("provenance.") or path == "schema_version":
            continue
        positive = path.split(".")[-1] not in ("overhead_s", "ambient_c", "rtt_ms", "m_half",
                                               "k_half", "n_half", "bytes_half",
                                               "heap_retention", *SESSION_KEYS) and \
            not path.startswith("load.")
        if value < 0 or (positive and value == 0):
            raise InputError(where, path, f"must be {'> 0' if positive else '>= 0'}, got {value}")
        if not _covered(path, profile.provenance):
            raise InputError(where, path,
                             "has no provenance (add an entry under 'provenance' for this "
                             "key or a parent)")
    for key in ("session_cv", "step_cv"):
        if getattr(profile.session, key) > MAX_CV:
            raise InputError(where, f"compute.{key}", f"must be at most {MAX_CV:g} (a "
                             f"coefficient of variation), got {getattr(profile.session, key)}")
    if profile.memory.usable_ram_mb > profile.memory.ram_mb:
        raise InputError(where, "memory.usable_ram_mb", "is larger than memory.ram_mb")
    t = profile.thermal
    if t.throttle_full_c <= t.throttle_start_c:
        raise InputError(where, "thermal.throttle_full_c", "must exceed thermal.throttle_start_c")
    if not 0 < t.min_speed_factor <= 1:
        raise InputError(where, "thermal.min_speed_factor", "must be in (0, 1]")
    if t.power_exponent < 1:
        raise InputError(where, "thermal.power_exponent", "must be >= 1 (power falls at "
                         f"least as fast as speed when a device throttles), got {t.power_exponent}")
    if profile.battery is not None and not 0 < profile.battery.hot_charge_share <= 1:
        raise InputError(where, "battery.hot_charge_share", "must be in (0, 1], got "
                         f"{profile.battery.hot_charge_share}")
    if profile.modes and profile.mode not in profile.modes:
        raise InputError(where, "mode", f"{profile.mode!r} is not one of its modes "
                         f"({', '.join(sorted(profile.modes))}): name the mode its figures "
                         "describe")
    return profile


def load_profile(name_or_path: str) -> DeviceProfile:
    """A shipped profile by name, or a profile YAML by path; `...@MODE` in one of its
    operating modes."""
    base, mode = split_mode(name_or_path)
    if mode is not None:
        return in_mode(load_profile(base), mode)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return _read(path)
    shipped = shipped_profiles()
    if name_or_path not in shipped:
        raise InputError("--device", name_or_path,
                         f"unknown device profile (shipped: {', '.join(sorted(shipped))}; "
                         "or give a profile YAML path)")
    return _read(shipped[name_or_path])


_READ: dict[tuple[str, int, int], DeviceProfile] = {}  # by file, modification time, size


def _read(path: Path) -> DeviceProfile:
    """A profile file parsed and checked once per process while it is unchanged (a sweep
    or a fleet loads the same few profiles many times)."""
    try:
        st = path.stat()
    except OSError:
        return parse_profile(load_yaml(path), str(path))  # load_yaml names the problem
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _READ:
        _READ[key] = parse_profile(load_yaml(path), str(path))
    return _READ[key]


def shipped_profiles() -> dict[str, Path]:
    """Shipped profile names and their files."""
    folder = resources.files("edgetwin.profiles") / "devices"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir()
            if str(p).endswith(".yaml")}


def _numbers(node: Any, path: str = "") -> list[tuple[str, float]]:
    """Every numeric leaf with its dotted path (compute keys may hold a dot themselves)."""
    out: list[tuple[str, float]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out.append((path, float(node)))
    return out


def _covered(path: str, provenance: dict[str, Provenance]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:i]) in provenance for i in range(1, len(parts) + 1))
