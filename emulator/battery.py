"""Battery charge: the charger's daily window, charging on it and the standby drain
off it between sessions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from emulator.availability import in_daily_window, window_seconds

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Charger:
    """Each client's charger: its rate, and the daily window (local time) it is plugged
    in; a device without a battery is on mains, a 24-hour window."""

    charge_w: F64
    tz_h: F64
    start_h: F64
    length_h: F64

    def on(self, t_s: F64) -> B:
        return in_daily_window(t_s, self.tz_h, self.start_h, self.length_h)

    def plugged_s(self, t0_s: F64, t1_s: F64) -> F64:
        """Seconds of [t0, t1] on the charger."""
        return window_seconds(t0_s, t1_s, self.tz_h, self.start_h, self.length_h)

    def steady_over(self, t0_s: F64, t1_s: F64) -> B:
        """On the charger all of [t0, t1], or off it all of it."""
        on = self.plugged_s(t0_s, t1_s)
        return (on <= 0.0) | (on >= (t1_s - t0_s) * (1.0 - 1e-12))

    def subset(self, m: B | npt.NDArray[np.int64]) -> Charger:
        return Charger(**{f.name: getattr(self, f.name)[m] for f in dataclasses.fields(self)})


def idle_update_j(battery_j: F64, capacity_j: F64, t0_s: F64, t1_s: F64, charger: Charger,
                  standby_w: F64 | float) -> F64:
    """Charge after idling from t0 to t1: the charger's rate while plugged in, less the
    profile's standby drain (per client, or one for all) otherwise.

    Mains-powered devices (infinite capacity) stay at infinity.
    """
    plugged_s = charger.plugged_s(t0_s, t1_s)
    unplugged_s = np.maximum(t1_s - t0_s - plugged_s, 0.0)
    finite = np.isfinite(capacity_j)
    out = battery_j.copy()
    delta = charger.charge_w * plugged_s - standby_w * unplugged_s
    out[finite] = np.clip(battery_j[finite] + delta[finite], 0.0, capacity_j[finite])
    return out


def percent(battery_j: F64, capacity_j: F64) -> F64:
    """State of charge in percent; mains power reads 100."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(np.isfinite(capacity_j), 100.0 * battery_j / capacity_j, 100.0)
    return pct
