"""The local steps of a batch of sessions: when they end, what they cost, whether the
battery gives out first.

Before the first step a session sets up (builds its model, loads the payload; the
profile's `SessionCost`), at busy power. Clients that can neither throttle nor sleep
between steps take every step at the same speed, so their steps are one closed form;
the rest (a device that may heat past its throttle point, or MobileFineTuner's
energy-aware sleep) go step by step, vectorised over the batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgetwin.common.arrays import F64, I64, B
from edgetwin.emulator import battery as batt
from edgetwin.emulator import thermal
from edgetwin.emulator.availability import Charger
from edgetwin.emulator.entries import join, take
from edgetwin.profiles.training_setup import EnergyAwareSleep


@dataclass(frozen=True)
class StepInputs:
    """Per session of the batch: what the steps start from and what each one costs."""

    start_s: F64  # when the session's compute starts (the download's end)
    planned: I64  # steps to take
    step_s: F64  # one step at speed 1
    speed: F64
    busy_w: F64
    split_s: F64  # SplitLoRA's exchange per step (0 otherwise)
    io_w: F64
    idle_w: F64
    battery_j: F64  # charge when the steps start
    capacity_j: F64
    abort_j: F64  # the trainer stops at this charge (-inf on mains power)
    charger: Charger  # charges while plugged in (its window may open or close mid-session)
    temp_c: F64
    thermal: thermal.ThermalArrays | None  # None: thermal model off
    sleep: EnergyAwareSleep | None  # None: no energy-aware sleep
    setup_s: F64 | None = None  # the set-up before the first step, at speed 1 (None: none)


@dataclass(frozen=True)
class StepResult:
    end_s: F64
    energy_j: F64
    done: I64
    battery_fail_s: F64  # when the battery gave out (inf if it did not)
    temp_c: F64
    throttled_s: F64  # compute time spent below full speed
    throttle_onset_s: F64  # when the first throttled step started (inf: none)
    battery_j: F64  # charge when the steps end (inf on mains power)


def run_steps(x: StepInputs) -> StepResult:
    """All sessions' set-up and steps: the set-up first, then the steps in closed form
    where it holds (no throttling, no sleeps, the charger neither plugged in nor out
    meanwhile), step by step elsewhere."""
    if x.setup_s is None or not np.any(x.setup_s > 0):
        return _steps(x)
    after, setup_j, died = _set_up(x)
    r = _steps(after)
    return dataclasses.replace(r, energy_j=r.energy_j + setup_j,
                               battery_fail_s=np.where(died, after.start_s, r.battery_fail_s))


def _set_up(x: StepInputs) -> tuple[StepInputs, F64, B]:
    """The set-up at busy power (charging while plugged in, heating as it runs): the
    inputs of the steps that follow, its energy, and where the battery gave out in it
    (those take no step)."""
    dur = x.setup_s / x.speed  # type: ignore[operator]
    end = x.start_s + dur
    energy = x.busy_w * dur
    gain = x.charger.charge_w * x.charger.plugged_s(x.start_s, end)
    bat = np.minimum(x.battery_j - energy + gain, x.capacity_j)
    died = np.isfinite(x.capacity_j) & (x.planned > 0) & (bat <= x.abort_j)
    temp = x.temp_c if x.thermal is None else x.thermal.relax(x.temp_c, x.busy_w, dur)
    after = dataclasses.replace(x, start_s=end, battery_j=bat, temp_c=temp, setup_s=None,
                                planned=np.where(died, 0, x.planned))
    return after, energy, died


def _steps(x: StepInputs) -> StepResult:
    steady = np.ones(x.planned.shape, dtype=bool) if x.sleep is None else \
        np.zeros(x.planned.shape, dtype=bool)
    if x.thermal is not None and x.sleep is None:
        steady = x.thermal.cannot_throttle(x.temp_c, x.busy_w)
    if not len(steady):
        return _closed_form(x)
    parts: list[tuple[B, StepResult]] = []
    if steady.any():
        steady_x = _subset(x, steady)
        closed = _closed_form(steady_x)
        kept = steady_x.charger.steady_over(steady_x.start_s, closed.end_s)
        parts.append((_mask(steady, kept), _subset_result(closed, kept)))
        steady = _mask(steady, kept)
    if not steady.all():
        parts.append((~steady, _step_by_step(_subset(x, ~steady))))
    if len(parts) == 1:
        return parts[0][1]
    # the parts joined, then put back in the batch's order (each part's places in it)
    places = np.concatenate([np.flatnonzero(m) for m, _ in parts])
    return take(join([part for _, part in parts]), np.argsort(places))


def _mask(outer: B, inner: B) -> B:
    """`outer` with only those of its True entries that `inner` (one per True) keeps."""
    out = np.zeros(outer.shape, dtype=bool)
    out[np.flatnonzero(outer)[inner]] = True
    return out


def _subset_result(r: StepResult, m: B) -> StepResult:
    return r if m.all() else take(r, m)  # all: the same numbers without copying them


def _subset(x: StepInputs, m: B) -> StepInputs:
    """The sessions `m` of a batch's inputs (its parameters, not per session, kept)."""
    if m.all():
        return x
    i = np.flatnonzero(m)
    th = None if x.thermal is None else take(x.thermal, i)
    arrays: dict[str, Any] = {k: v[i] for k, v in vars(x).items() if isinstance(v, np.ndarray)}
    return dataclasses.replace(x, thermal=th, charger=take(x.charger, i), **arrays)


def _closed_form(x: StepInputs) -> StepResult:
    """Every step alike: n steps take n times one; the battery, falling (or rising) by the
    same amount each step, gives out at the first step that takes it to the abort line."""
    compute_s = x.step_s / x.speed
    dt = compute_s + x.split_s
    e = x.busy_w * compute_s + x.io_w * x.split_s
    charging_w = np.where(x.charger.on(x.start_s), x.charger.charge_w, 0.0)
    gain = charging_w * dt - e  # charge per step
    finite = np.isfinite(x.capacity_j)
    with np.errstate(divide="ignore", invalid="ignore"):
        falling = np.ceil((x.battery_j - x.abort_j) / -gain)
    first = np.minimum(x.battery_j - e + charging_w * dt, x.capacity_j)
    death = np.where(gain >= 0, np.where(first <= x.abort_j, 1, np.inf),
                     np.maximum(falling, 1.0))
    death = np.where(finite & (x.planned > 0), death, np.inf)
    died = death <= x.planned
    done = np.where(died, death, x.planned).astype(np.int64)
    end = x.start_s + done * dt
    temp = x.temp_c if x.thermal is None else x.thermal.relax(x.temp_c, x.busy_w,
                                                                done * compute_s)
    return StepResult(end_s=end, energy_j=done * e, done=done,
                      battery_fail_s=np.where(died, end, np.inf), temp_c=temp,
                      throttled_s=np.zeros(x.planned.shape),
                      throttle_onset_s=np.full(x.planned.shape, np.inf),
                      battery_j=np.minimum(x.battery_j + done * gain, x.capacity_j))


def _moved(some: B | None, new: Any, old: Any) -> Any:
    """`new` for the sessions that take this step (`some`; None: every one), `old` for
    the others."""
    return new if some is None else np.where(some, new, old)


def _step_by_step(x: StepInputs) -> StepResult:
    """Step by step, vectorised over the batch: throttling, sleeps and the charger change
    each step. A throttled step runs slower at lower power (DVFS), a hot phone charges
    slower, and a charger counts from the step it is plugged in at."""
    n = len(x.planned)
    t = x.start_s.copy()
    energy = np.zeros(n)
    throttled = np.zeros(n)
    onset = np.full(n, np.inf)
    bat = x.battery_j.copy()
    temp = x.temp_c.copy()
    done = np.zeros(n, dtype=np.int64)
    battery_fail = np.full(n, np.inf)
    finite = np.isfinite(x.capacity_j)
    th = x.thermal
    for step in range(int(x.planned.max(initial=0))):
        active = (step < x.planned) & ~np.isfinite(battery_fail)
        if not active.any():
            break
        some = None if active.all() else active
        charging_w = np.where(x.charger.on(t), x.charger.charge_w, 0.0)
        if th is not None:
            factor, share = th.factor_and_share(temp)
            busy_w = th.busy_power_w(x.busy_w, factor)
            charging_w = charging_w * share
        else:
            factor, busy_w = np.ones(n), x.busy_w
        compute_s = x.step_s / (x.speed * factor)
        dt = compute_s + x.split_s
        e = busy_w * compute_s + x.io_w * x.split_s
        if th is not None:
            temp = _moved(some, th.relax(temp, busy_w, compute_s), temp)
        if x.sleep is not None:  # between optimizer steps, not after the last
            rest = np.where(step + 1 < x.planned,
                            x.sleep.sleep_s(batt.percent(bat - e, x.capacity_j), temp), 0.0)
            dt = dt + rest
            e = e + x.idle_w * rest
            if th is not None:
                temp = _moved(some, th.relax(temp, x.idle_w, rest), temp)
        slow = active & (factor < 1.0)
        if slow.any():
            onset = np.where(slow & np.isinf(onset), t, onset)
            throttled = np.where(slow, throttled + compute_s, throttled)
        t = _moved(some, t + dt, t)
        energy = _moved(some, energy + e, energy)
        bat = _moved(some, np.minimum(bat - e + charging_w * dt, x.capacity_j), bat)
        done = _moved(some, done + 1, done)
        died = active & finite & (bat <= x.abort_j)
        if died.any():
            battery_fail[died] = t[died]
    return StepResult(end_s=t, energy_j=energy, done=done, battery_fail_s=battery_fail,
                      temp_c=temp, throttled_s=throttled, throttle_onset_s=onset, battery_j=bat)
