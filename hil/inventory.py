"""The device inventory (`devices.yaml`): which devices are attached, how to reach
them, what runs on them and which profile each stands for.

    devices:
      - name: jetson
        profile: jetson-orin-nano-8gb       # a shipped name or a profile file
        transport: {kind: ssh, host: jetson.local, user: nvidia}
        runner: {kind: torch, torch_device: cuda}

Configuration only: the transports and runners are found by kind elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgetwin.common.errors import InputError
from edgetwin.profiles.device import DeviceProfile, load_profile
from edgetwin.profiles.schema import from_mapping, load_yaml

TRANSPORT_KINDS = ("local", "ssh", "adb")
RUNNER_KINDS = ("torch", "native")


@dataclass(frozen=True)
class LocalConfig:
    """A child process on this host, pinned to `cpus`, with `threads` torch threads."""

    kind: Literal["local"] = "local"
    cpus: tuple[int, ...] | None = None  # default: every CPU this process may use
    threads: int | None = None  # default: one per CPU of the set
    workdir: str | None = None  # default: ~/.cache/edgetwin/devices/NAME


@dataclass(frozen=True)
class SshConfig:
    """A host reached with the system's OpenSSH client (~/.ssh/config applies)."""

    host: str
    kind: Literal["ssh"] = "ssh"
    port: int | None = None
    user: str | None = None
    identity: str | None = None
    python: str = "python3"  # the device's interpreter, used to make the agent's venv
    workdir: str = "~/.edgetwin"
    known_hosts: str | None = None  # default: OpenSSH's own files
    options: dict[str, str] | None = None  # more `-o Key=Value` options (ProxyJump, ...)
    connect_timeout_s: float = 15.0


@dataclass(frozen=True)
class AdbConfig:
    """An Android device reached with the `adb` client."""

    serial: str
    kind: Literal["adb"] = "adb"
    workdir: str = "/data/local/tmp/edgetwin"
    adb: str = "adb"  # the client program


TransportConfig = LocalConfig | SshConfig | AdbConfig


@dataclass(frozen=True)
class RunnerConfig:
    """`torch`: edgetwin's agent in Python; `native`: the C++ runner (no Python needed)."""

    kind: Literal["torch", "native"] = "torch"
    torch_device: Literal["cpu", "cuda"] = "cpu"


@dataclass(frozen=True)
class Device:
    name: str
    transport: TransportConfig
    runner: RunnerConfig
    profile: str | None = None  # as written: a shipped name or a path
    profile_path: Path | None = None  # resolved, where `profile` names a file
    index: int = 0
    source: str = ""

    def load_profile(self) -> DeviceProfile | None:
        """The profile this device stands for; None until it has one."""
        if self.profile is None:
            return None
        if self.profile_path is not None and not self.profile_path.exists():
            return None
        try:
            return load_profile(str(self.profile_path or self.profile))
        except InputError as err:
            raise InputError(self.source, f"devices[{self.index}].profile", str(err)) from None


@dataclass(frozen=True)
class Inventory:
    devices: tuple[Device, ...]
    path: Path

    def get(self, name: str) -> Device:
        for d in self.devices:
            if d.name == name:
                return d
        raise InputError(str(self.path), "devices", f"no device named {name!r} (known: "
                         f"{', '.join(d.name for d in self.devices)})")

    def by_profile_name(self) -> dict[str, list[Device]]:
        """Devices grouped by the `name:` of the profile each stands for."""
        out: dict[str, list[Device]] = {}
        for d in self.devices:
            p = d.load_profile()
            if p is not None:
                out.setdefault(p.name, []).append(d)
        return out


_TRANSPORTS: dict[str, type[Any]] = {"local": LocalConfig, "ssh": SshConfig, "adb": AdbConfig}


def load_inventory(path: Path) -> Inventory:
    """Parse and check a devices file; every problem is one line naming file and key."""
    where = str(path)
    data = load_yaml(path)
    if not isinstance(data, dict) or set(data) != {"devices"}:
        raise InputError(where, "(top level)", "expected a mapping with one key, devices")
    entries = data["devices"]
    if not isinstance(entries, list) or not entries:
        raise InputError(where, "devices", "expected a non-empty list of devices")
    devices = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        d = _device(entry, i, where, path.parent)
        if d.name in seen:
            raise InputError(where, f"devices[{i}].name", f"{d.name!r} is used twice")
        seen.add(d.name)
        devices.append(d)
    return Inventory(tuple(devices), path)


def _device(entry: Any, i: int, where: str, base: Path) -> Device:
    key = f"devices[{i}]"
    if not isinstance(entry, dict):
        raise InputError(where, key, "expected a mapping")
    allowed = {"name", "profile", "transport", "runner"}
    for k in entry:
        if k not in allowed:
            raise InputError(where, f"{key}.{k}", f"unknown key (expected one of: "
                             f"{', '.join(sorted(allowed))})")
    name = entry.get("name")
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InputError(where, f"{key}.name", "expected a name of letters, digits, '-', '_' "
                         f"or '.', got {name!r}")
    transport = _transport(entry.get("transport"), f"{key}.transport", where)
    runner = from_mapping(RunnerConfig, entry.get("runner", {}), where, f"{key}.runner")
    if runner.kind == "torch" and isinstance(transport, AdbConfig):
        raise InputError(where, f"{key}.runner.kind", "an adb device runs the native runner "
                         "(phones have no Python): set runner: {kind: native}")
    if runner.kind == "native" and runner.torch_device != "cpu":
        raise InputError(where, f"{key}.runner.torch_device", "the native runner runs on the "
                         "CPU only")
    profile = entry.get("profile")
    profile_path = None
    if profile is not None:
        if not isinstance(profile, str) or not profile:
            raise InputError(where, f"{key}.profile", "expected a profile name or file")
        if profile.endswith((".yaml", ".yml")) or "/" in profile:
            profile_path = (base / os.path.expanduser(profile)).resolve()
        else:
            try:
                load_profile(profile)
            except InputError as err:
                raise InputError(where, f"{key}.profile", err.problem) from None
    return Device(name, transport, runner, profile, profile_path, i, where)


def _transport(value: Any, key: str, where: str) -> TransportConfig:
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise InputError(where, key, "expected a mapping with a kind "
                         f"({', '.join(TRANSPORT_KINDS)})")
    kind = value.get("kind")
    if kind not in _TRANSPORTS:
        raise InputError(where, f"{key}.kind", f"expected one of {', '.join(TRANSPORT_KINDS)}, "
                         f"got {kind!r}")
    config = from_mapping(_TRANSPORTS[kind], value, where, key)
    _check_transport(config, key, where)
    return config  # type: ignore[no-any-return]


def _check_transport(t: TransportConfig, key: str, where: str) -> None:
    if isinstance(t, LocalConfig):
        usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if t.cpus is not None:
            if not t.cpus:
                raise InputError(where, f"{key}.cpus", "expected at least one CPU")
            bad = [c for c in t.cpus if c not in usable]
            if usable and bad:
                raise InputError(where, f"{key}.cpus", f"CPU {bad[0]} is not one this host "
                                 f"lets edgetwin use ({', '.join(map(str, usable))})")
        if t.threads is not None and t.threads <= 0:
            raise InputError(where, f"{key}.threads", f"must be > 0, got {t.threads}")
    elif isinstance(t, SshConfig):
        if not t.host or t.host.startswith("-"):
            raise InputError(where, f"{key}.host", f"expected a host name, got {t.host!r}")
        if t.port is not None and not 0 < t.port < 65536:
            raise InputError(where, f"{key}.port", f"must be in 1..65535, got {t.port}")
        if t.user is not None and (not t.user or t.user.startswith("-")):
            raise InputError(where, f"{key}.user", f"expected a user name, got {t.user!r}")
        if t.identity is not None and not Path(os.path.expanduser(t.identity)).is_file():
            raise InputError(where, f"{key}.identity", f"key file {t.identity!r} does not exist")
        for name, v in (t.options or {}).items():
            if not name.isalnum() or "\n" in v:
                raise InputError(where, f"{key}.options.{name}", "expected an ssh option name "
                                 "and a one-line value")
        if t.connect_timeout_s <= 0:
            raise InputError(where, f"{key}.connect_timeout_s", "must be > 0")
    elif not t.serial or t.serial.startswith("-"):
        raise InputError(where, f"{key}.serial", f"expected a device serial, got {t.serial!r}")
    workdir = getattr(t, "workdir", None)
    if workdir is not None and (not workdir or any(c in workdir for c in "\n;|&$`'\"")):
        raise InputError(where, f"{key}.workdir", "expected a plain directory path")
