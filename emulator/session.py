"""The device model: what one client session costs and how it ends.

A session is download -> local steps -> upload. Given the clients and the time
they start, `SessionModel.plan` works out, for a whole batch at once, the session's
timeline if nothing stops it (the links, the memory check, the steps) and the first
thing that would stop it (out of memory, going offline, the battery, the user
abandoning it). Orchestration decides who runs and when it stops waiting; `account`
says what a session had done by then, and `settle` writes it back to the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetwin.common.arrays import F64, I64, B, at_places
from edgetwin.emulator import battery as batt
from edgetwin.emulator.availability import Availability, Charger, Chargers, Trace
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.entries import take
from edgetwin.emulator.fleet import Fleet
from edgetwin.emulator.network import BandwidthTrace, jitter, transfer_s
from edgetwin.emulator.steps import StepInputs, run_steps
from edgetwin.emulator.streams import Streams
from edgetwin.emulator.thermal import ThermalArrays, relax_c
from edgetwin.profiles import variability
from edgetwin.profiles.device import BatterySpec
from edgetwin.profiles.training_setup import EnergyAwareSleep

# how a session ended; `stale` is the server's word, not the device's: the session
# completed, but its report was older than `max_staleness` versions and was discarded
STATUSES = ("completed", "offline", "deadline", "out_of_memory", "battery", "interrupted",
            "cancelled", "stale")
COMPLETED, OFFLINE, DEADLINE, OOM, BATTERY, INTERRUPTED, CANCELLED, STALE = range(len(STATUSES))
# Nothing cuts a session later than its deadline after its start (a synchronous round
# closes by then, an asynchronous report is cut there, a Flower message's timeout is at
# most that), so going offline later decides no outcome and no margin: it is looked for
# only until then, and this much beyond (a round's close can round a hair past it).
OFFLINE_BEYOND_DEADLINE_S = 1.0


@dataclass
class Planned:
    """A batch of sessions: the uninterrupted timeline, and when and why each would stop."""

    client: I64
    key: I64  # each session's random key (the round, or an asynchronous session's number)
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
    # the charge at the end of each phase, its charger and the load counted (inf: mains)
    battery_download_j: F64
    battery_compute_j: F64
    battery_upload_j: F64
    on_charger: B  # on its charger (or mains) when the session started
    temp_start_c: F64
    temp_end_c: F64
    throttled_s: F64  # compute time below full speed
    throttle_onset_s: F64  # when the first throttled step started (inf: none)
    compute_factor: F64  # the session's draw of its profile's variability (1: none)
    setup_s: F64  # the set-up before the first step, at the client's speed and its draw
    # when each failure would strike, whether or not it comes before the session's end:
    # going offline, the user abandoning it while it trains (inf: neither; going offline
    # only looked for until `OFFLINE_BEYOND_DEADLINE_S` past the deadline)
    offline_s: F64
    interrupt_s: F64


@dataclass(frozen=True)
class SessionCosts:
    """Nominal per-session costs that stand in for the group's in `plan`: what an
    attached device measured, when a replay asks what would have happened."""

    step_s: F64
    busy_w: F64
    peak_memory_mb: F64
    # the bytes a session moves, where they are those of real messages (a Flower app's)
    download_bytes: F64 | None = None
    upload_bytes: F64 | None = None
    # the factor on the session's compute, its set-up and its steps (None: drawn from the
    # profile's variability, as a run does; a measured session is taken as it is: ones),
    # and the set-up (None: the group's)
    factor: F64 | None = None
    setup_s: F64 | None = None
    steps: I64 | None = None  # the local steps (None: the client's; a control message: 0)


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
    # the device when the session ended, as `settle` writes it back
    battery_start_pct: F64  # mains power reads 100
    battery_end_pct: F64
    battery_end_j: F64
    temp_end_c: F64
    throttled_s: F64


@dataclass(frozen=True)
class _Links:
    down_mbps: F64
    up_mbps: F64
    latency_s: F64
    download_s: F64
    split_s: F64  # SplitLoRA's per-step exchange


class SessionModel:
    """Plans sessions for a fleet; reads all randomness from counter-based streams."""

    def __init__(self, s: Scenario, fleet: Fleet, streams: Streams, base: Path) -> None:
        self.scenario, self.fleet, self.streams = s, fleet, streams
        av = s.availability
        trace = Trace.load(base / av.trace) if av.trace else None
        ps = fleet.profiles
        # each group's charger: the profile's own, or one rate the scenario sets for all
        self.charge_w = np.array([_charge_w(p.battery, s.battery.charge_w) for p in ps])
        charge_w = self.charge_w
        self.charger = Chargers(charge_w=fleet.column(lambda c: charge_w[fleet.group[c]]),
                                tz_h=fleet.tz_h, start_h=fleet.plug_start_h,
                                length_h=fleet.plug_length_h)
        self.availability = Availability(
            streams, tz_h=fleet.tz_h, window_start_h=fleet.window_start_h,
            window_length_h=fleet.window_length_h, charger=self.charger, column=fleet.column,
            charging_only=av.charging_only, mean_session_s=av.mean_session_s,
            online_fraction=av.online_fraction, trace=trace)
        self.bw_traces = [BandwidthTrace.load(base / g.network.trace.file, g.network.trace.mode)
                          if g.network.trace
                          else None for g in fleet.groups]
        self.group_thermal = ThermalArrays(
            ambient_c=np.array([p.thermal.throttle_full_c if s.thermal.hot
                                else p.thermal.ambient_c for p in ps]),
            resistance_c_per_w=np.array([p.thermal.resistance_c_per_w for p in ps]),
            time_constant_s=np.array([p.thermal.time_constant_s for p in ps]),
            throttle_start_c=np.array([p.thermal.throttle_start_c for p in ps]),
            throttle_full_c=np.array([p.thermal.throttle_full_c for p in ps]),
            min_speed_factor=np.array([p.thermal.min_speed_factor for p in ps]),
            power_exponent=np.array([p.thermal.power_exponent for p in ps]),
            hot_charge_share=np.array([p.battery.hot_charge_share if p.battery else 1.0
                                       for p in ps]))
        self.idle_w = np.array([p.power.idle_w for p in ps])
        self.io_w = np.array([p.power.io_w for p in ps])
        self.standby_w = np.array([p.power.standby_w for p in ps])
        self.costs = fleet.cost_table
        self.group_jitter = np.array([g.network.session_jitter_cv for g in fleet.groups])
        self.sleep = EnergyAwareSleep() if s.battery.energy_aware_sleep else None

    # --- state kept between sessions -----------------------------------------------------
    def state_at(self, c: I64, t_s: F64, charger: Charger | None = None) -> tuple[F64, F64]:
        """Each client's charge and temperature at `t_s`, after idling (charging or the
        standby drain, and cooling) since it was last touched; nothing is written.
        `charger`: the clients' chargers, where the caller has them read."""
        f = self.fleet
        t_s = np.broadcast_to(t_s, c.shape)
        idle_s = np.maximum(t_s - f.last_touch_s[c], 0.0)
        th, g = self.group_thermal, f.group[c]
        temp = relax_c(f.temperature_c[c], np.zeros(c.shape), idle_s, th.ambient_c[g],
                       th.resistance_c_per_w[g], th.time_constant_s[g])
        return self.battery_at(c, t_s, charger), temp

    def battery_at(self, c: I64, t_s: F64 | float, charger: Charger | None = None,
                   capacity_j: F64 | None = None) -> F64:
        """Each client's charge at `t_s` (one instant for all, or one each; see
        `state_at`); mains power stays infinite. `capacity_j`: the clients' battery
        capacities, where the caller has them read."""
        f = self.fleet
        out: F64 = f.battery_j[c]
        capacity_j = f.battery_capacity_j[c] if capacity_j is None else capacity_j
        i = np.flatnonzero(np.isfinite(capacity_j))
        if len(i):
            ci = c[i]
            out[i] = batt.idle_update_j(
                out[i], capacity_j[i], f.last_touch_s[ci],
                at_places(np.asarray(t_s, dtype=np.float64), i),
                self.charger.of(ci) if charger is None else take(charger, i),
                self.standby_w[f.group[ci]])
        return out

    def charged_enough(self, c: I64, battery_j: F64, capacity_j: F64 | None = None) -> B:
        """Charged enough to join a round at `battery_j` (`capacity_j`: as `battery_at`)."""
        capacity_j = self.fleet.battery_capacity_j[c] if capacity_j is None else capacity_j
        pct = batt.percent(battery_j, capacity_j)
        return pct >= self.scenario.battery.min_pct_to_join

    # --- planning -----------------------------------------------------------------------------
    def plan(self, c: I64, t0: F64, key: I64 | int, costs: SessionCosts | None = None,
             start: tuple[F64, F64] | None = None) -> Planned:
        """Sessions of clients `c` starting at `t0`, their randomness keyed by `key`;
        `costs` (one entry per session) in place of the groups' nominal ones, and `start`
        (charge, temperature) in place of the clients' state at `t0` (`state_at`)."""
        f, s = self.fleet, self.scenario
        keys = np.broadcast_to(np.asarray(key, dtype=np.int64), c.shape)
        g = f.group[c]
        k = f.cost_index[c]
        factor = self.compute_factor(c, keys) if costs is None or costs.factor is None \
            else costs.factor
        setup = (self.costs.setup_s[k] if costs is None or costs.setup_s is None
                 else costs.setup_s) * factor
        down_bytes = self.costs.download_bytes[k] if costs is None or \
            costs.download_bytes is None else costs.download_bytes
        links = self._links(c, g, k, t0, keys, down_bytes)
        io_w = self.io_w[g]
        dl_end = t0 + links.download_s
        charger = self.charger.of(c)
        battery0, temp0 = self.state_at(c, t0, charger) if start is None else start
        peak = self.costs.peak_memory_mb[k] if costs is None else costs.peak_memory_mb
        oom = peak > f.usable_ram_mb[c]
        cap = f.battery_capacity_j[c]
        speed = f.speed[c]
        abort_j = np.full(len(c), -np.inf)  # mains power never aborts
        finite = np.isfinite(cap)
        abort_j[finite] = cap[finite] * s.battery.abort_below_pct / 100.0
        thermal = take(self.group_thermal, g) if s.thermal.enabled else None
        battery_dl = self._charged(battery0 - io_w * links.download_s, cap, charger, t0, dl_end,
                                   None if thermal is None else thermal.charge_share(temp0))
        steps = run_steps(StepInputs(
            start_s=dl_end, planned=np.where(oom, 0, f.local_steps[c] if costs is None or
                                             costs.steps is None else costs.steps),
            step_s=(self.costs.step_s[k] if costs is None else costs.step_s) * factor,
            speed=speed, setup_s=np.where(oom, 0.0, setup),
            busy_w=self.costs.busy_w[k] if costs is None else costs.busy_w,
            split_s=links.split_s, io_w=io_w, idle_w=self.idle_w[g],
            battery_j=battery_dl, capacity_j=cap, abort_j=abort_j, charger=charger, temp_c=temp0,
            thermal=thermal, sleep=self.sleep))
        compute_end = steps.end_s
        up_bytes = self.costs.upload_bytes[k] if costs is None or costs.upload_bytes is None \
            else costs.upload_bytes
        ul_s = np.where(oom, 0.0, transfer_s(up_bytes, links.up_mbps, links.latency_s))
        ul_end = compute_end + ul_s
        battery_ul = self._charged(steps.battery_j - io_w * ul_s, cap, charger, compute_end,
                                   ul_end, None if thermal is None
                                   else thermal.charge_share(steps.temp_c))
        offline_s = self.availability.offline_at(
            c, t0, charger, t0 + (s.orchestration.deadline_s + OFFLINE_BEYOND_DEADLINE_S))
        interrupt_s = self._interrupt_at(c, keys, dl_end)
        stop, cause = _failure_race(oom, dl_end, compute_end, ul_end, steps.battery_fail_s,
                                    offline_s, interrupt_s)
        return Planned(
            client=c, key=keys, start_s=t0, download_end_s=dl_end, compute_end_s=compute_end,
            upload_end_s=ul_end, stop_s=stop, stop_cause=cause, steps=steps.done,
            download_j=io_w * links.download_s, compute_j=steps.energy_j, upload_j=io_w * ul_s,
            download_bytes=down_bytes,
            upload_bytes=np.where(oom, 0.0, up_bytes), peak_memory_mb=peak,
            battery_start_j=battery0, battery_download_j=battery_dl,
            battery_compute_j=steps.battery_j, battery_upload_j=battery_ul,
            on_charger=charger.on(t0), temp_start_c=temp0, temp_end_c=steps.temp_c,
            throttled_s=steps.throttled_s, throttle_onset_s=steps.throttle_onset_s,
            compute_factor=np.asarray(factor, dtype=np.float64),
            setup_s=np.where(oom, 0.0, setup / speed), offline_s=offline_s,
            interrupt_s=interrupt_s)

    def compute_factor(self, c: I64, keys: I64) -> F64:
        """Each session's draw of its profile's variability (`compute.session_cv`): a
        lognormal factor of mean 1 on its compute (set-up and steps), keyed by client and
        session; ones where the scenario turns variability off or the profile states none."""
        cv = self.costs.session_cv[self.fleet.cost_index[c]]
        if not self.scenario.variability.enabled or not np.any(cv > 0):
            return np.ones(len(c))
        return variability.from_uniform(self.streams.uniform("compute", c, keys), cv)

    @staticmethod
    def _charged(battery_j: F64, capacity_j: F64, charger: Charger, t0_s: F64, t1_s: F64,
                 share: F64 | None) -> F64:
        """The charge after [t0, t1] of transfer: `battery_j` (the load taken off) plus
        what the charger gave while plugged in (`share` of its rate: a hot phone's)."""
        gain = charger.charge_w * charger.plugged_s(t0_s, t1_s) * (1.0 if share is None
                                                                      else share)
        return np.minimum(battery_j + gain, capacity_j)

    def _links(self, c: I64, g: I64, k: I64, t0: F64, keys: I64, down_bytes: F64) -> _Links:
        """This session's links: the client's bandwidth with a per-session jitter (and the
        group's trace over time); the download and SplitLoRA's per-step exchange."""
        f = self.fleet
        n = len(c)
        u_down = self.streams.uniform("network", c, keys, np.zeros(n, dtype=np.int64))
        u_up = self.streams.uniform("network", c, keys, np.ones(n, dtype=np.int64))
        cv = self.group_jitter[g]
        down = f.downlink_mbps[c] * jitter(u_down, cv)
        up = f.uplink_mbps[c] * jitter(u_up, cv)
        for gi, tr in enumerate(self.bw_traces):
            if tr is not None:
                m = g == gi
                down[m], up[m] = tr.links(t0[m], down[m], up[m], f.downlink_mbps[c[m]],
                                          f.uplink_mbps[c[m]])
        lat = f.latency_s[c]
        split = self.costs.split_step_bytes[k]
        split_s = np.where(split > 0, transfer_s(split / 2, up, lat)
                           + transfer_s(split / 2, down, lat) + self.costs.split_server_s[k],
                           0.0)
        return _Links(down_mbps=down, up_mbps=up, latency_s=lat,
                      download_s=transfer_s(down_bytes, down, lat),
                      split_s=split_s)

    def _interrupt_at(self, c: I64, keys: I64, dl_end: F64) -> F64:
        """When the user would abandon each session (inf: never), from its compute's start."""
        hazard = self.scenario.availability.dropout_per_hour
        if hazard <= 0:
            return np.full(len(c), np.inf)
        u = self.streams.uniform("dropout", c, keys)
        out: F64 = dl_end + -np.log(u) / hazard * 3600.0
        return out

    def replan(self, p: Planned, i: I64, costs: SessionCosts | None = None) -> Planned:
        """Sessions `i` of a planned batch planned again from the same start (the same
        charge, temperature, link draws and failures), with `costs` in place of the
        group's; without them, the same plan."""
        return self.plan(p.client[i], p.start_s[i], p.key[i], costs,
                         start=(p.battery_start_j[i], p.temp_start_c[i]))

    # --- ending -------------------------------------------------------------------------------
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
        cap = self.fleet.battery_capacity_j[p.client]
        finite = np.isfinite(cap)
        bat = np.full(len(cap), np.inf)  # each phase's change, in the share of it done
        i = np.flatnonzero(finite)
        bat[i] = np.clip(p.battery_start_j[i] + (p.battery_download_j[i] - p.battery_start_j[i])
                         * f_dl[i] + (p.battery_compute_j[i] - p.battery_download_j[i]) * f_comp[i]
                         + (p.battery_upload_j[i] - p.battery_compute_j[i]) * f_up[i], 0.0, cap[i])
        # throttling starts at its onset and lasts to the end of the compute (it cools
        # no sooner under a sustained load)
        throttled = np.minimum(p.throttled_s, np.maximum(
            np.minimum(end, p.compute_end_s) - p.throttle_onset_s, 0.0))
        return Outcome(end_s=end, status=status.astype(np.int64), download_s=dl, compute_s=comp,
                       upload_s=up, steps=steps, energy_j=energy,
                       download_bytes=p.download_bytes * f_dl,
                       upload_bytes=p.upload_bytes * np.where(status == COMPLETED, 1.0, f_up),
                       battery_start_pct=batt.percent(p.battery_start_j, cap),
                       battery_end_pct=batt.percent(bat, cap), battery_end_j=bat,
                       temp_end_c=p.temp_start_c + (p.temp_end_c - p.temp_start_c) * f_comp,
                       throttled_s=throttled)

    def settle(self, p: Planned, o: Outcome) -> None:
        """Write each client's battery and temperature as they were when its session ended."""
        self.fleet.write_state(p.client, o.battery_end_j, o.temp_end_c, o.end_s)


def _failure_race(oom: B, dl_end: F64, compute_end: F64, ul_end: F64, battery_fail_s: F64,
                  offline_s: F64, interrupt_s: F64) -> tuple[F64, I64]:
    """When and why each session stops: the first of the battery, going offline and the
    user abandoning it (while it trains) that comes before its own end."""
    stop = np.where(oom, dl_end, ul_end)
    cause = np.where(oom, OOM, COMPLETED)
    for when, why in ((battery_fail_s, BATTERY), (offline_s, OFFLINE),
                      (interrupt_s, INTERRUPTED)):
        earlier = when < stop
        if why == INTERRUPTED:  # abandoning happens while training only
            earlier &= when < compute_end
        stop = np.where(earlier, when, stop)
        cause = np.where(earlier, why, cause)
    return stop, cause


def _charge_w(battery: BatterySpec | None, scenario_w: float | None) -> float:
    """A group's charger: the scenario's one rate for all, or its profile's (0: mains)."""
    if battery is None:
        return 0.0
    return battery.charge_w if scenario_w is None else scenario_w


def _frac(part: F64, whole: F64) -> F64:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(whole > 0, np.clip(part / whole, 0.0, 1.0), 1.0)
