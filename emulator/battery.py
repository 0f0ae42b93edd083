"""Battery charge between sessions: charging on the charger, standby drain off it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from emulator.availability import window_seconds

F64 = npt.NDArray[np.float64]


def idle_update_j(battery_j: F64, capacity_j: F64, t0_s: F64, t1_s: F64, tz_h: F64,
                  plug_start_h: F64, plug_length_h: F64, charge_w: F64 | float,
                  standby_w: F64 | float) -> F64:
    """Charge after idling from t0 to t1: +charge_w while plugged, -standby_w otherwise
    (each the profile's, per client, or one for all).

    Mains-powered devices (infinite capacity) stay at infinity.
    """
    plugged_s = window_seconds(t0_s, t1_s, tz_h, plug_start_h, plug_length_h)
    unplugged_s = np.maximum(t1_s - t0_s - plugged_s, 0.0)
    finite = np.isfinite(capacity_j)
    out = battery_j.copy()
    delta = charge_w * plugged_s - standby_w * unplugged_s
    out[finite] = np.clip(battery_j[finite] + delta[finite], 0.0, capacity_j[finite])
    return out


def percent(battery_j: F64, capacity_j: F64) -> F64:
    """State of charge in percent; mains power reads 100."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(np.isfinite(capacity_j), 100.0 * battery_j / capacity_j, 100.0)
    return pct
