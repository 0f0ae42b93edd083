"""Operating modes: a device's named power modes (a Jetson's `nvpmodel` modes, a phone's
performance or battery-saver governor) as scales on the figures its profile states for
its own mode. `jetson-orin-nano-8gb@super` is the profile in its `super` mode, wherever a
profile is named (a scenario group, `edgetwin workload --device`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgetwin.common.errors import InputError

if TYPE_CHECKING:
    from edgetwin.profiles.device import DeviceProfile

SEPARATOR = "@"


@dataclass(frozen=True)
class OperatingMode:
    """How one mode differs from the mode the profile's figures describe."""

    compute_scale: float = 1.0  # the accelerator's clock: every op kind's FLOP rate
    bandwidth_scale: float = 1.0  # memory bandwidth: every op kind's bytes per second
    launch_scale: float = 1.0  # the CPU's clock: per-kernel dispatch overhead divides by it
    power_scale: float = 1.0  # busy power of every op kind
    idle_power_scale: float = 1.0


def split_mode(name: str) -> tuple[str, str | None]:
    """`profile@mode` -> (`profile`, `mode`); a name without `@` has no mode."""
    base, sep, mode = name.rpartition(SEPARATOR)
    return (base, mode) if sep and base and mode else (name, None)


def in_mode(profile: DeviceProfile, mode: str, where: str = "--device") -> DeviceProfile:
    """`profile` in its operating mode `mode` (its own mode: unchanged but for the name)."""
    if mode not in profile.modes:
        known = ", ".join(sorted(profile.modes)) or "none"
        raise InputError(where, f"{profile.name}{SEPARATOR}{mode}",
                         f"unknown operating mode (the profile's modes: {known})")
    m = profile.modes[mode]
    compute = {key: dataclasses.replace(
        c, flops_per_s=c.flops_per_s * m.compute_scale,
        precision_flops_per_s={k: v * m.compute_scale
                               for k, v in c.precision_flops_per_s.items()},
        bytes_per_s=c.bytes_per_s * m.bandwidth_scale, overhead_s=c.overhead_s / m.launch_scale,
        busy_power_w=c.busy_power_w * m.power_scale) for key, c in profile.compute.items()}
    power = dataclasses.replace(profile.power, idle_w=profile.power.idle_w * m.idle_power_scale)
    return dataclasses.replace(profile, name=f"{profile.name}{SEPARATOR}{mode}",
                               compute=compute, power=power, mode=mode,
                               identity={**profile.identity, "mode": mode})
