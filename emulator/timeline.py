"""One client's local steps, step by step: speed, power, temperature, charge and what
the charger gave at every step, for plots and checks of the device-state model.

It runs the emulator's own step model (`edgetwin.emulator.steps.run_steps`) one step at a time,
carrying the temperature and the charge from each step to the next, so what it shows
is what a session in a run goes through.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgetwin.common.arrays import F64
from edgetwin.emulator.availability import Charger
from edgetwin.emulator.entries import take
from edgetwin.emulator.session import SessionModel
from edgetwin.emulator.steps import StepInputs, run_steps


@dataclass(frozen=True)
class StepTimeline:
    """Per step of one client's session: when it ended and what it cost."""

    end_s: F64
    speed: F64  # the thermal speed factor (1: cold)
    power_w: F64  # average power over the step
    energy_j: F64
    temp_c: F64  # at the step's end
    battery_pct: F64  # at the step's end (100 on mains power)
    on_charger: bool


def step_timeline(model: SessionModel, client: int, steps: int, *, plugged: bool,
                  battery_pct: float = 100.0, temp_c: float | None = None,
                  factor: float = 1.0) -> StepTimeline:
    """`steps` local steps of `client`, on its charger or not, from `battery_pct` and
    `temp_c` (default: the profile's ambient), with no other session before them; `factor`
    is a session's draw of its profile's variability (client_sessions.csv's
    `compute_factor`)."""
    f = model.fleet
    g = int(f.group[client])
    k = int(f.cost_index[client])
    cap = float(f.battery_capacity_j[client])
    thermal = take(model.group_thermal, np.array([g]))
    one = np.ones(1)
    x = StepInputs(
        start_s=np.zeros(1), planned=np.ones(1, dtype=np.int64),
        step_s=model.costs.step_s[k] * factor * one, speed=f.speed[client] * one,
        busy_w=model.costs.busy_w[k] * one, split_s=np.zeros(1), io_w=model.io_w[g] * one,
        idle_w=model.idle_w[g] * one,
        battery_j=(cap * battery_pct / 100.0 if np.isfinite(cap) else np.inf) * one,
        capacity_j=cap * one, abort_j=np.full(1, -np.inf),
        charger=Charger(charge_w=(model.charge_w[g] if plugged else 0.0) * one,
                        tz_h=0 * one, start_h=0 * one, length_h=24 * one),
        temp_c=(thermal.ambient_c if temp_c is None else temp_c * one),
        thermal=thermal, sleep=None)
    rows = np.empty((steps, 6))
    for i in range(steps):
        r = run_steps(x)
        took_s = float(r.end_s[0] - x.start_s[0])
        battery = float(np.maximum(r.battery_j, 0.0)[0])
        speed = float(x.step_s[0] / (x.speed[0] * took_s))
        rows[i] = (r.end_s[0], speed, r.energy_j[0] / took_s, r.energy_j[0], r.temp_c[0],
                   100.0 * battery / cap if np.isfinite(cap) else 100.0)
        x = dataclasses.replace(x, start_s=r.end_s, temp_c=r.temp_c,
                                battery_j=np.array([battery]))
    return StepTimeline(end_s=rows[:, 0], speed=rows[:, 1], power_w=rows[:, 2],
                        energy_j=rows[:, 3], temp_c=rows[:, 4], battery_pct=rows[:, 5],
                        on_charger=plugged)
