"""First-order thermal model: sustained power heats a device toward an equilibrium,
idle time cools it toward ambient, and heat beyond a threshold throttles it: clocks and
voltage fall together (DVFS), so its power falls with its speed, and a phone cuts its
charge rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetwin.common.arrays import F64, B


def relax_c(temp_c: F64, power_w: F64, dt_s: F64, ambient_c: F64, resistance_c_per_w: F64,
            time_constant_s: F64) -> F64:
    """Temperature after dt at constant power: exponential approach to ambient + P * R."""
    target = ambient_c + power_w * resistance_c_per_w
    return target + (temp_c - target) * np.exp(-dt_s / time_constant_s)


def speed_factor(temp_c: F64, start_c: F64, full_c: F64, min_factor: F64) -> F64:
    """1 below the throttle threshold, falling linearly to `min_factor` at `full_c`."""
    return _fall(throttle_depth(temp_c, start_c, full_c), min_factor)


def _fall(depth: F64, floor: F64) -> F64:
    """1 at depth 0, falling linearly to `floor` at depth 1."""
    return 1.0 - depth * (1.0 - floor)


def throttle_depth(temp_c: F64, start_c: F64, full_c: F64) -> F64:
    """How far into the throttle band: 0 at `start_c` and below, 1 at `full_c` and above."""
    # min(max()) rather than clip: the same numbers, at a fraction of the calls' cost
    return np.minimum(np.maximum((temp_c - start_c) / (full_c - start_c), 0.0), 1.0)


@dataclass(frozen=True)
class ThermalArrays:
    """The thermal parameters of a batch of clients, one entry each."""

    ambient_c: F64
    resistance_c_per_w: F64
    time_constant_s: F64
    throttle_start_c: F64
    throttle_full_c: F64
    min_speed_factor: F64
    power_exponent: F64  # busy power x speed factor ** k while throttled
    hot_charge_share: F64  # share of the charge rate kept at throttle_full_c

    def relax(self, temp_c: F64, power_w: F64 | float, dt_s: F64) -> F64:
        return relax_c(temp_c, np.asarray(power_w), dt_s, self.ambient_c,
                       self.resistance_c_per_w, self.time_constant_s)

    def speed_factor(self, temp_c: F64) -> F64:
        return speed_factor(temp_c, self.throttle_start_c, self.throttle_full_c,
                            self.min_speed_factor)

    def busy_power_w(self, busy_w: F64, factor: F64) -> F64:
        """Power while busy at speed factor `factor` (1: cold)."""
        return busy_w * factor ** self.power_exponent

    def charge_share(self, temp_c: F64) -> F64:
        """Share of the charge rate a device takes at `temp_c`: 1 below the throttle point,
        falling linearly to `hot_charge_share` at throttle_full_c."""
        return speed_factor(temp_c, self.throttle_start_c, self.throttle_full_c,
                            self.hot_charge_share)

    def factor_and_share(self, temp_c: F64) -> tuple[F64, F64]:
        """`speed_factor` and `charge_share` at once, from one throttle depth."""
        depth = throttle_depth(temp_c, self.throttle_start_c, self.throttle_full_c)
        return _fall(depth, self.min_speed_factor), _fall(depth, self.hot_charge_share)

    def cannot_throttle(self, temp_c: F64, power_w: F64) -> B:
        """Below the throttle point now and at the equilibrium of `power_w`: the device
        stays below it however long it runs (a margin covers rounding)."""
        hottest = np.maximum(temp_c, self.ambient_c + power_w * self.resistance_c_per_w)
        return hottest < self.throttle_start_c - 1e-9
