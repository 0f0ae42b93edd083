"""First-order thermal model: sustained power heats a device toward an equilibrium,
idle time cools it toward ambient, and heat beyond a threshold throttles it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def relax_c(temp_c: F64, power_w: F64, dt_s: F64, ambient_c: F64, resistance_c_per_w: F64,
            time_constant_s: F64) -> F64:
    """Temperature after dt at constant power: exponential approach to ambient + P * R."""
    target = ambient_c + power_w * resistance_c_per_w
    return target + (temp_c - target) * np.exp(-dt_s / time_constant_s)


def speed_factor(temp_c: F64, start_c: F64, full_c: F64, min_factor: F64) -> F64:
    """1 below the throttle threshold, falling linearly to `min_factor` at `full_c`."""
    frac = np.clip((temp_c - start_c) / (full_c - start_c), 0.0, 1.0)
    return 1.0 - frac * (1.0 - min_factor)
