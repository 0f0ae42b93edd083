"""Battery charge between sessions: charging on the charger, standby drain off it."""

from __future__ import annotations

import numpy as np

from edgetwin.common.arrays import F64
from edgetwin.emulator.availability import Charger


def idle_update_j(battery_j: F64, capacity_j: F64, t0_s: F64, t1_s: F64, charger: Charger,
                  standby_w: F64 | float) -> F64:
    """Charge after idling from t0 to t1: the charger's rate while plugged in, less the
    profile's standby drain (per client, or one for all) otherwise, kept within
    [0, capacity]: mains power (an infinite capacity and charge) stays at infinity."""
    plugged_s = charger.plugged_s(t0_s, t1_s)
    unplugged_s = np.maximum(t1_s - t0_s - plugged_s, 0.0)
    delta = charger.charge_w * plugged_s - standby_w * unplugged_s
    out: F64 = np.clip(battery_j + delta, 0.0, capacity_j)
    return out


def percent(battery_j: F64, capacity_j: F64) -> F64:
    """State of charge in percent; mains power reads 100."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(np.isfinite(capacity_j), 100.0 * battery_j / capacity_j, 100.0)
    return pct
