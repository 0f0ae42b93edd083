"""The device model: what one client session costs and how it ends.

A session is download -> local steps -> upload. Given the clients and the time
they start, `SessionModel.plan` works out, for a whole batch at once, the session's
timeline if nothing stops it (thermal throttling, energy-aware sleeps and battery
drain step by step) and the first thing that would stop it (out of memory,
going offline, the battery, the user abandoning it). Orchestration decides who
runs and when it stops waiting; `account` says what a session had done by then.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from emulator import battery as batt
from emulator import thermal
from emulator.availability import Availability, Trace
from emulator.fleet import Fleet
from emulator.network import BandwidthTrace, jitter, transfer_s
from emulator.scenario import Scenario
from emulator.streams import Streams
from profiles.setup import EnergyAwareSleep

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

STATUSES = ("completed", "offline", "deadline", "out_of_memory", "battery", "interrupted",
            "cancelled")
COMPLETED, OFFLINE, DEADLINE, OOM, BATTERY, INTERRUPTED, CANCELLED = range(len(STATUSES))


@dataclass
class Planned:
    """A batch of sessions: the uninterrupted timeline, and when and why each would stop."""

    client: I64
    round: int
    start_s: F64
    download_end_s: F64
    compute_end_s: F64
    upload_end_s: F64
    stop_s: F64  # the first failure, or upload_end_s
    stop_cause: I64
    steps: I64  # steps the uninterrupted session runs
    download_j: F64
    compute_j: F64
    upload_j: F64
    download_bytes: F64
    upload_bytes: F64
    peak_memory_mb: F64
    battery_start_j: F64
    charging_w: F64  # on a charger when the session started
    temp_start_c: F64
    temp_end_c: F64


@dataclass(frozen=True)
class SessionCosts:
    """Nominal per-session costs that stand in for the group's in `plan`: what an
    attached device measured, when a replay asks what would have happened."""

    step_s: F64
    busy_w: F64
    peak_memory_mb: F64


@dataclass
class Outcome:
    """What sessions had done when they ended (at `end_s`, for `status`)."""

    end_s: F64
    status: I64
    download_s: F64
    compute_s: F64
    upload_s: F64
    steps: I64
    energy_j: F64
    download_bytes: F64
    upload_bytes: F64


class SessionModel:
    """Plans sessions for a fleet; reads all randomness from counter-based streams."""

    def __init__(self, s: Scenario, fleet: Fleet, streams: Streams, base: Path) -> None:
        self.s, self.f, self.streams = s, fleet, streams
        av = s.availability
        trace = Trace.load(base / av.trace) if av.trace else None
        self.availability = Availability(
            streams, tz_h=fleet.tz_h, window_start_h=fleet.window_start_h,
            window_length_h=fleet.window_length_h, plug_start_h=fleet.plug_start_h,
            plug_length_h=fleet.plug_length_h, charging_only=av.charging_only,
            mean_session_s=av.mean_session_s, online_fraction=av.online_fraction, trace=trace)
        self.bw_traces = [BandwidthTrace.load(base / g.network.trace) if g.network.trace
                          else None for g in fleet.groups]
        ps = fleet.profiles
        self.ambient = np.array([p.thermal.ambient_c for p in ps])
        self.resistance = np.array([p.thermal.resistance_c_per_w for p in ps])
        self.tau = np.array([p.thermal.time_constant_s for p in ps])
        self.th_start = np.array([p.thermal.throttle_start_c for p in ps])
        self.th_full = np.array([p.thermal.throttle_full_c for p in ps])
        self.th_min = np.array([p.thermal.min_speed_factor for p in ps])
        self.idle_w = np.array([p.power.idle_w for p in ps])
        self.io_w = np.array([p.power.io_w for p in ps])
        costs = fleet.costs
        self.c_step_s = np.array([c.step_s for c in costs])
        self.c_busy_w = np.array([c.busy_w for c in costs])
        self.c_peak_mb = np.array([c.peak_memory_mb for c in costs])
        self.c_up = np.array([c.upload_bytes for c in costs], dtype=np.float64)
        self.c_down = np.array([c.download_bytes for c in costs], dtype=np.float64)
        self.c_split_bytes = np.array([c.split_step_bytes for c in costs], dtype=np.float64)
        self.c_split_server_s = np.array([c.split_server_s for c in costs])
        self.group_jitter = np.array([g.network.session_jitter_cv for g in fleet.groups])

    # --- state kept between sessions -----------------------------------------------------
    def bring_up_to_date(self, c: I64, t_s: F64) -> None:
        """Idle charging/drain and cooling since each client was last touched."""
        f = self.f
        t0 = f.last_touch_s[c]
        t_s = np.broadcast_to(t_s, c.shape)
        g = f.group[c]
        f.battery_j[c] = batt.idle_update_j(
            f.battery_j[c], f.battery_capacity_j[c], t0, t_s, f.tz_h[c], f.plug_start_h[c],
            f.plug_length_h[c], self.s.battery.charge_w, 0.05)
        f.temperature_c[c] = thermal.relax_c(f.temperature_c[c], np.zeros(c.shape),
                                             np.maximum(t_s - t0, 0.0), self.ambient[g],
                                             self.resistance[g], self.tau[g])
        f.last_touch_s[c] = t_s

    def eligible(self, c: I64, t_s: float) -> npt.NDArray[np.bool_]:
        """Online now and charged enough to join (call after `bring_up_to_date`)."""
        ok = self.availability.online(c, np.full(c.shape, t_s))
        pct = batt.percent(self.f.battery_j[c], self.f.battery_capacity_j[c])
        return ok & (pct >= self.s.battery.min_pct_to_join)

    # --- planning -----------------------------------------------------------------------------
    def plan(self, c: I64, t0: F64, rnd: int, costs: SessionCosts | None = None) -> Planned:
        f, s = self.f, self.s
        n = len(c)
        g = f.group[c]
        k = f.cost_index[c]
        u_net = self.streams.uniform("network", c, np.full(n, rnd), np.zeros(n, dtype=np.int64))
        u_net2 = self.streams.uniform("network", c, np.full(n, rnd), np.ones(n, dtype=np.int64))
        cv = self.group_jitter[g]
        down_bw = f.downlink_mbps[c] * jitter(u_net, cv)
        up_bw = f.uplink_mbps[c] * jitter(u_net2, cv)
        for gi, tr in enumerate(self.bw_traces):
            if tr is not None:
                m = g == gi
                fd, fu = tr.factors(t0[m])
                down_bw[m] *= fd
                up_bw[m] *= fu
        lat = f.latency_s[c]
        down_bytes, up_bytes = self.c_down[k], self.c_up[k]
        dl_s = transfer_s(down_bytes, down_bw, lat)
        io_w = self.io_w[g]
        dl_end = t0 + dl_s
        battery0 = f.battery_j[c].copy()
        temp0 = f.temperature_c[c].copy()
        peak = self.c_peak_mb[k] if costs is None else costs.peak_memory_mb
        oom = peak > f.usable_ram_mb[c]
        # local steps, vectorised over the batch, step by step
        steps_planned = np.where(oom, 0, f.local_steps[c])
        busy_w = self.c_busy_w[k] if costs is None else costs.busy_w
        split_s = np.where(self.c_split_bytes[k] > 0,
                           transfer_s(self.c_split_bytes[k] / 2, up_bw, lat)
                           + transfer_s(self.c_split_bytes[k] / 2, down_bw, lat)
                           + self.c_split_server_s[k], 0.0)
        speed = f.speed[c]
        base_step = self.c_step_s[k] if costs is None else costs.step_s
        t = dl_end.copy()
        energy = np.zeros(n)
        bat = battery0 - io_w * dl_s
        temp = temp0.copy()
        done = np.zeros(n, dtype=np.int64)
        battery_fail = np.full(n, np.inf)
        cap = f.battery_capacity_j[c]
        charging_w = np.where(self.availability.plugged(c, t0), s.battery.charge_w, 0.0)
        abort_j = np.full(n, -np.inf)  # mains power never aborts
        finite = np.isfinite(cap)
        abort_j[finite] = cap[finite] * s.battery.abort_below_pct / 100.0
        sleep = EnergyAwareSleep() if s.battery.energy_aware_sleep else None
        use_thermal = s.thermal.enabled
        for step in range(int(steps_planned.max(initial=0))):
            active = (step < steps_planned) & ~np.isfinite(battery_fail)
            if not active.any():
                break
            factor = thermal.speed_factor(temp, self.th_start[g], self.th_full[g],
                                          self.th_min[g]) if use_thermal else 1.0
            compute_s = base_step / (speed * factor)
            dt = compute_s + split_s
            e = busy_w * compute_s + io_w * split_s
            if use_thermal:
                temp = np.where(active, thermal.relax_c(temp, busy_w, compute_s, self.ambient[g],
                                                        self.resistance[g], self.tau[g]), temp)
            if sleep is not None:  # between optimizer steps, not after the last
                rest = np.where(step + 1 < steps_planned,
                                sleep_s(sleep, batt.percent(bat - e, cap), temp), 0.0)
                dt = dt + rest
                e = e + self.idle_w[g] * rest
                if use_thermal:
                    temp = np.where(active, thermal.relax_c(
                        temp, self.idle_w[g], rest, self.ambient[g], self.resistance[g],
                        self.tau[g]), temp)
            t = np.where(active, t + dt, t)
            energy = np.where(active, energy + e, energy)
            bat = np.where(active, np.minimum(bat - e + charging_w * dt, cap), bat)
            done = np.where(active, done + 1, done)
            died = active & np.isfinite(cap) & (bat <= abort_j)
            battery_fail[died] = t[died]
        compute_end = t
        ul_s = np.where(oom, 0.0, transfer_s(up_bytes, up_bw, lat))
        ul_end = compute_end + ul_s
        stop = np.where(oom, dl_end, ul_end)
        cause = np.where(oom, OOM, COMPLETED)
        # the first thing that ends the session early wins
        candidates = [(battery_fail, BATTERY)]
        off = self.availability.offline_at(c, t0)
        candidates.append((off, OFFLINE))
        hazard = s.availability.dropout_per_hour
        if hazard > 0:
            u = self.streams.uniform("dropout", c, np.full(n, rnd))
            candidates.append((dl_end + -np.log(u) / hazard * 3600.0, INTERRUPTED))
        for when, why in candidates:
            earlier = when < stop
            if why == INTERRUPTED:  # abandoning happens while training only
                earlier &= when < compute_end
            stop = np.where(earlier, when, stop)
            cause = np.where(earlier, why, cause)
        return Planned(
            client=c, round=rnd, start_s=t0, download_end_s=dl_end, compute_end_s=compute_end,
            upload_end_s=ul_end, stop_s=stop, stop_cause=cause, steps=done,
            download_j=io_w * dl_s, compute_j=energy, upload_j=io_w * ul_s,
            download_bytes=down_bytes, upload_bytes=np.where(oom, 0.0, up_bytes),
            peak_memory_mb=peak, battery_start_j=battery0, charging_w=charging_w,
            temp_start_c=temp0, temp_end_c=temp)

    def replan(self, p: Planned, i: I64, costs: SessionCosts | None = None) -> Planned:
        """Sessions `i` of a planned batch planned again from the same start (the same
        charge, temperature, link draws and failures), with `costs` in place of the
        group's; without them, the same plan."""
        f, c = self.f, p.client[i]
        saved = f.battery_j[c].copy(), f.temperature_c[c].copy()
        f.battery_j[c], f.temperature_c[c] = p.battery_start_j[i], p.temp_start_c[i]
        try:
            return self.plan(c, p.start_s[i], p.round, costs)
        finally:
            f.battery_j[c], f.temperature_c[c] = saved

    def account(self, p: Planned, cut_s: F64, cut_status: int) -> Outcome:
        """What each session had done when it stopped: at its own stop or at `cut_s`."""
        end = np.minimum(p.stop_s, cut_s)
        status = np.where(cut_s < p.stop_s, cut_status, p.stop_cause)
        dl = np.clip(end - p.start_s, 0.0, p.download_end_s - p.start_s)
        comp_total = p.compute_end_s - p.download_end_s
        comp = np.clip(end - p.download_end_s, 0.0, comp_total)
        up_total = p.upload_end_s - p.compute_end_s
        up = np.clip(end - p.compute_end_s, 0.0, up_total)
        f_dl = _frac(dl, p.download_end_s - p.start_s)
        f_comp = _frac(comp, comp_total)
        f_up = _frac(up, up_total)
        steps = np.where(f_comp >= 1.0, p.steps, np.floor(p.steps * f_comp)).astype(np.int64)
        energy = p.download_j * f_dl + p.compute_j * f_comp + p.upload_j * f_up
        return Outcome(end_s=end, status=status.astype(np.int64), download_s=dl, compute_s=comp,
                       upload_s=up, steps=steps, energy_j=energy,
                       download_bytes=p.download_bytes * f_dl,
                       upload_bytes=p.upload_bytes * np.where(status == COMPLETED, 1.0, f_up))

    def settle(self, p: Planned, o: Outcome) -> None:
        """Write each client's battery and temperature as they were when its session ended."""
        f = self.f
        c = p.client
        finite = np.isfinite(f.battery_capacity_j[c])
        bat = np.where(finite, np.clip(p.battery_start_j - o.energy_j + p.charging_w * (
            o.end_s - p.start_s), 0.0, f.battery_capacity_j[c]), np.inf)
        f.battery_j[c] = bat
        frac = _frac(o.compute_s, p.compute_end_s - p.download_end_s)
        f.temperature_c[c] = p.temp_start_c + (p.temp_end_c - p.temp_start_c) * frac
        f.last_touch_s[c] = o.end_s


def sleep_s(rule: EnergyAwareSleep, battery_pct: F64, temperature_c: F64) -> F64:
    """MobileFineTuner's inter-step sleep, vectorised (see `EnergyAwareSleep.sleep_s`)."""
    f_bat = np.where(battery_pct < rule.battery_threshold_pct, rule.low_hz, rule.high_hz)
    f_temp = np.where(temperature_c > rule.temperature_threshold_c, rule.low_hz, rule.high_hz)
    return np.minimum(1000.0 / np.minimum(f_bat, f_temp), rule.max_sleep_ms) / 1000.0


def _frac(part: F64, whole: F64) -> F64:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(whole > 0, np.clip(part / whole, 0.0, 1.0), 1.0)

