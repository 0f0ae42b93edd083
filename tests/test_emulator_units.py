"""Each part of the device model alone: network, availability, battery, thermal, memory."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from edgetwin.common.errors import InputError
from edgetwin.emulator import battery, thermal
from edgetwin.emulator.availability import (
    Availability,
    Charger,
    Chargers,
    Trace,
    in_daily_window,
    window_end_s,
    window_seconds,
)
from edgetwin.emulator.clock import mod_24
from edgetwin.emulator.columns import column
from edgetwin.emulator.dist import Dist
from edgetwin.emulator.network import BandwidthTrace, jitter, transfer_s
from edgetwin.emulator.session import DEADLINE, OOM, SessionModel
from edgetwin.emulator.streams import Streams, unit_interval

from .emulator_helpers import SCENARIOS, build, run, small_scenario

H = 3600.0


def _hours_near_multiples_of_24() -> np.ndarray:
    """Hours where a modulo goes wrong first: at, just above and just below whole
    multiples of 24, tiny and huge magnitudes, signed zeros and the smallest subnormal."""
    rng = np.random.default_rng(0)
    whole = rng.integers(-10**6, 10**6, 200_000).astype(np.float64) * 24.0
    spread = [rng.uniform(-s, s, 100_000) for s in (1e-300, 1e-20, 1.0, 24.0, 1e6, 1e12,
                                                     2.0 ** 49)]
    edges = np.array([0.0, -0.0, 24.0, -24.0, -1e-20, 1e-20, 5e-324, -5e-324,
                      np.nextafter(24.0, 0.0), -np.nextafter(24.0, 0.0)])
    return np.concatenate([whole, np.nextafter(whole, np.inf), np.nextafter(whole, -np.inf),
                           *spread, edges])


def test_hours_of_the_day_are_numpys_modulo_bit_for_bit() -> None:
    x = _hours_near_multiples_of_24()
    assert np.array_equal(mod_24(x).view(np.int64), np.mod(x, 24.0).view(np.int64))
    # outside the exact range, and at inf and nan, numpy's own modulo answers
    odd = np.array([3e20, -7e18, np.inf, -np.inf, np.nan, 5.0])
    with np.errstate(invalid="ignore"):
        assert np.array_equal(mod_24(odd), np.mod(odd, 24.0), equal_nan=True)
    assert mod_24(np.float64(-1.5)) == 22.5
    # hours of the day already (a window's start) come back as numpy's modulo gives them:
    # unchanged, but for -0.0, which becomes 0.0; 24.0 itself is not among them
    hours = np.random.default_rng(1).uniform(0.0, 24.0, 5_000)
    day = np.concatenate([hours, [0.0, -0.0, 5e-324, np.nextafter(24.0, 0.0)]])
    for h in (day, np.append(day, 24.0)):
        assert np.array_equal(mod_24(h).view(np.int64), np.mod(h, 24.0).view(np.int64))
    assert mod_24(hours) is not hours  # a new array, as numpy's
    # the check has teeth: the same formula without its fix-up of a quotient one too
    # large is caught
    naive = x - np.floor(x / 24.0) * 24.0
    assert not np.array_equal(naive.view(np.int64), np.mod(x, 24.0).view(np.int64))


def test_transfer_time_is_latency_plus_bits_over_rate() -> None:
    t = transfer_s(np.array([1e6, 0.0]), np.array([8.0, 8.0]), np.array([0.05, 0.05]))
    assert t[0] == pytest.approx(1.05) and t[1] == 0.0


def test_jitter_has_mean_one_and_the_given_spread() -> None:
    u = Streams(0).uniform("network", np.arange(200_000))
    f = jitter(u, 0.3)
    assert f.mean() == pytest.approx(1.0, abs=0.01)
    assert f.std() / f.mean() == pytest.approx(0.3, rel=0.05)
    assert np.all(jitter(u[:10], 0.0) == 1.0)


def test_keyed_uniforms_stay_inside_the_open_interval() -> None:
    """The largest hash rounds to 1 in the conversion; it is kept below 1, so that a
    normal quantile there (a client's plug-in hour) stays finite."""
    top = np.array([2 ** 64 - 1, 2 ** 64 - 2 ** 11, 0, (2 ** 53 - 2) << 11], dtype=np.uint64)
    u = unit_interval(top.copy())
    assert u[0] == u[1] == np.nextafter(1.0, 0.0) and u[2] == 2.0 ** -54
    assert u[3] == 1.0 - 2.0 ** -52  # the next m down rounds below 1 by itself
    assert float(unit_interval(top[:1].reshape(()).copy())) < 1.0  # a scalar key's draw
    plug = Dist("normal", mean=23.0, std=1.5)
    assert np.all(np.isfinite(plug.quantile(u))) and np.all(np.isfinite(jitter(u, 0.3)))


def test_bandwidth_trace_scales_by_its_mean(tmp_path: Path) -> None:
    path = tmp_path / "bw.csv"
    path.write_text("time_s,downlink_mbps,uplink_mbps\n0,10,1\n100,30,3\n")
    tr = BandwidthTrace.load(path)
    one = np.ones(3)
    down, up = tr.links(np.array([50.0, 150.0, 250.0]), one, one, one, one)
    assert list(down) == [0.5, 1.5, 0.5] and list(up) == [0.5, 1.5, 0.5]


def test_bandwidth_trace_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bw.csv"
    path.write_text("time_s,downlink_mbps,uplink_mbps\n0,10,1\n5,fast,1\n")
    with pytest.raises(InputError, match="line 3"):
        BandwidthTrace.load(path)


def test_daily_window_with_time_zones() -> None:
    t = np.array([0.0, 10 * H, 20 * H])
    on = in_daily_window(t, np.full(3, 2.0), np.full(3, 8.0), np.full(3, 6.0))
    assert list(on) == [False, True, False]  # local 02:00, 12:00, 22:00 vs 08:00-14:00
    end = window_end_s(np.array([10 * H]), np.array([2.0]), np.array([8.0]), np.array([6.0]))
    assert end[0] == pytest.approx(12 * H)  # closes at local 14:00 = 12:00 UTC


def test_window_seconds_over_several_days() -> None:
    got = window_seconds(np.array([0.0]), np.array([3 * 24 * H]), np.zeros(1), np.array([22.0]),
                         np.array([8.0]))
    assert got[0] == pytest.approx(3 * 8 * H)


def _availability(n: int, frac: float, session_s: float | None) -> Availability:
    return Availability(Streams(5), tz_h=np.zeros(n), window_start_h=np.zeros(n),
                        window_length_h=np.full(n, 24.0),
                        charger=Chargers(charge_w=np.zeros(n), tz_h=np.zeros(n),
                                         start_h=np.zeros(n), length_h=np.zeros(n)),
                        column=partial(column, n, whole=True), charging_only=False,
                        mean_session_s=session_s, online_fraction=frac, trace=None)


def test_churn_online_share_and_spell_length_over_many_clients() -> None:
    n = 20_000
    av = _availability(n, 0.6, 3600.0)
    c = np.arange(n)
    on = av.online(c, np.full(n, 50_000.0))
    assert on.mean() == pytest.approx(0.6, abs=0.015)
    # spells are whole epochs, each online with probability q: from a random instant
    # the rest of a spell lasts L (1 + q) / 2 on average
    remaining = av.offline_at(c[on], np.full(int(on.sum()), 50_000.0)) - 50_000.0
    assert remaining.min() > 0
    assert remaining.mean() == pytest.approx(3600.0 * 1.6 / 2, rel=0.05)


def test_availability_is_a_pure_function_of_client_and_time() -> None:
    av = _availability(100, 0.5, 600.0)
    c = np.arange(100)
    first = av.online(c, np.full(100, 1234.0))
    av.online(c[::-1], np.full(100, 99.0))  # other queries in between change nothing
    assert np.array_equal(first, av.online(c, np.full(100, 1234.0)))


def test_trace_online_and_end(tmp_path: Path) -> None:
    path = tmp_path / "av.csv"
    path.write_text("client,start_s,end_s\n7,100,200\n7,500,900\n9,0,50\n")
    tr = Trace.load(path)
    c = np.array([0, 0, 0, 1])  # 0 -> trace client 7, 1 -> trace client 9
    t = np.array([150.0, 300.0, 600.0, 10.0])
    assert list(tr.online(c, t)) == [True, False, True, True]
    assert list(tr.end_s(c[[0, 2, 3]], t[[0, 2, 3]])) == [200.0, 900.0, 50.0]


def test_trace_with_a_period_loops_at_it(tmp_path: Path) -> None:
    """A `period_s` column sets the loop: off after the last end until the period."""
    path = tmp_path / "av.csv"
    path.write_text("client,start_s,end_s,period_s\n0,0,10,100\n1,50,60,100\n")
    tr = Trace.load(path)
    c, t = np.array([0, 0, 0, 1]), np.array([5.0, 80.0, 105.0, 155.0])
    assert tr.online(c, t).tolist() == [True, False, True, True]
    assert float(tr.end_s(np.array([0]), np.array([105.0]))[0]) == 110.0
    for rows, line, problem in (("0,0,10,8", 2, "needs end_s <= period_s"),
                                ("0,0,10,nan", 2, "needs end_s <= period_s, a finite number"),
                                ("0,0,10,inf", 2, "needs end_s <= period_s, a finite number"),
                                ("0,0,10,100\n1,0,10,90", 3, "period_s differs")):
        path.write_text(f"client,start_s,end_s,period_s\n{rows}\n")
        with pytest.raises(InputError, match=f"line {line}: {problem}"):
            Trace.load(path)


def test_trace_with_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "av.csv"
    path.write_text("client,start_s,end_s\n1,10,5\n")
    with pytest.raises(InputError, match="line 2: needs 0 <= start_s < end_s"):
        Trace.load(path)


def test_battery_charges_on_the_charger_and_clamps() -> None:
    cap = np.array([1000.0, 1000.0, np.inf])
    charger = Charger(charge_w=np.full(3, 15.0), tz_h=np.zeros(3), start_h=np.zeros(3),
                              length_h=np.array([24.0, 0.0, 24.0]))
    got = battery.idle_update_j(np.array([900.0, 10.0, np.inf]), cap, np.zeros(3),
                                np.full(3, 2 * H), charger, standby_w=0.05)
    assert got[0] == 1000.0  # full
    assert got[1] == 0.0  # drained to empty, not below
    assert got[2] == np.inf  # mains power
    assert list(battery.percent(got, cap)) == [100.0, 0.0, 100.0]


def test_thermal_heats_to_equilibrium_cools_to_ambient_and_throttles() -> None:
    one = np.ones(1)
    hot = thermal.relax_c(25 * one, 5 * one, 1e6 * one, 25 * one, 4 * one, 300 * one)
    assert hot[0] == pytest.approx(45.0)
    cool = thermal.relax_c(hot, 0 * one, 1e6 * one, 25 * one, 4 * one, 300 * one)
    assert cool[0] == pytest.approx(25.0)
    half = thermal.relax_c(25 * one, 5 * one, 300 * one, 25 * one, 4 * one, 300 * one)
    assert half[0] == pytest.approx(45 - 20 * np.exp(-1))
    f = thermal.speed_factor(np.array([30.0, 47.5, 80.0]), 45 * np.ones(3), 50 * np.ones(3),
                             0.6 * np.ones(3))
    assert list(f) == pytest.approx([1.0, 0.8, 0.6])


def test_sustained_training_throttles_a_phone() -> None:
    """Six cores at 6.5 W would settle far above the throttle point: later steps are
    slower (and draw less power, tests/test_device_state.py)."""
    r = run(small_scenario(fleet__groups=[
        {"name": "phones", "profile": "flagship-phone-sd8gen3", "count": 40,
         "setup": {"batch": 8, "seq": 256}, "spread": {"speed": 1.0, "background_load": 0.0}}],
        fleet__clients=40, data={"local_steps": 60}, orchestration={
            "clients_per_round": 1, "deadline_s": 100_000}, stop={"rounds": 1}))
    cool = run(small_scenario(fleet__groups=[
        {"name": "phones", "profile": "flagship-phone-sd8gen3", "count": 40,
         "setup": {"batch": 8, "seq": 256}, "spread": {"speed": 1.0, "background_load": 0.0}}],
        fleet__clients=40, data={"local_steps": 60}, thermal={"enabled": False},
        orchestration={"clients_per_round": 1, "deadline_s": 100_000}, stop={"rounds": 1}))
    assert r.sessions["compute_s"][0] > 1.1 * cool.sessions["compute_s"][0]
    assert r.sessions["throttled_s"][0] > 0 and cool.sessions["throttled_s"][0] == 0


def test_a_session_that_does_not_fit_fails_as_out_of_memory_unless_sharded() -> None:
    group = {"name": "nanos", "profile": "jetson-nano-4gb", "count": 40,
             "setup": {"batch": 4, "seq": 128}, "spread": {"usable_ram": 1.0}}
    data = small_scenario(fleet__groups=[group], workload={"model": "gemma-3-270m"},
                          stop={"rounds": 1})
    r = run(data)
    assert np.all(r.sessions["status"] == OOM) and np.all(r.sessions["steps"] == 0)
    sharded = {**group, "setup": {**group["setup"], "shard_budget_mb": 256}}
    r2 = run(small_scenario(fleet__groups=[sharded], workload={"model": "gemma-3-270m"},
                            stop={"rounds": 1}, orchestration={"clients_per_round": 5,
                                                               "deadline_s": 100_000}))
    assert not np.any(r2.sessions["status"] == OOM)
    assert np.all(r2.sessions["steps"] == 3)


def test_energy_aware_sleep_lengthens_steps_by_the_published_rule() -> None:
    base = small_scenario(orchestration={"clients_per_round": 5, "deadline_s": 10_000},
                          stop={"rounds": 1}, battery={"initial_pct": 100})
    plain = run(base)
    slept = run({**base, "battery": {"initial_pct": 100, "energy_aware_sleep": True}})
    extra = slept.sessions["compute_s"] - plain.sessions["compute_s"]
    # three steps, two sleeps of 0.5 s at 2 Hz (battery high, device cool)
    assert extra == pytest.approx(np.full(len(extra), 1.0), abs=1e-6)


def test_session_model_is_the_seam_for_other_orchestrators() -> None:
    """A caller other than the engine (a Flower Grid) plans and accounts sessions itself."""
    from edgetwin.emulator.fleet import build_fleet

    s = build(small_scenario())
    streams = Streams(11)
    model = SessionModel(s, build_fleet(s, streams, SCENARIOS), streams, SCENARIOS)
    c = np.array([0, 1, 30])
    p = model.plan(c, np.zeros(3), 0)
    whole = model.account(p, np.full(3, np.inf), DEADLINE)  # nothing cuts them short
    assert np.all(whole.status == p.stop_cause) and np.all(whole.energy_j > 0)
    # cut half-way through the local steps: each has done about half its steps and
    # spent between its download's energy and the whole session's
    mid = (p.download_end_s + p.compute_end_s) / 2
    cut = model.account(p, mid, DEADLINE)
    ran = p.stop_s > mid
    assert ran.any()
    assert np.all(cut.end_s[ran] == mid[ran]) and np.all(cut.status[ran] == DEADLINE)
    assert np.all(cut.steps[ran] == p.steps[ran] // 2)
    assert np.all((p.download_j[ran] < cut.energy_j[ran])
                  & (cut.energy_j[ran] < whole.energy_j[ran]))
    assert np.all(cut.upload_bytes[ran] == 0)


def test_entries_are_taken_and_joined_whole_for_every_kind() -> None:
    """Some sessions of a planned batch, and of their chargers: every field's entries at
    the places asked (a mask the same as its places), and the parts joined back in order
    are the batch; a kind's every field is carried, the ones added later too."""
    import dataclasses

    from edgetwin.emulator.entries import join, take
    from edgetwin.emulator.fleet import build_fleet

    s = build(small_scenario())
    streams = Streams(11)
    model = SessionModel(s, build_fleet(s, streams, SCENARIOS), streams, SCENARIOS)
    c = np.array([0, 1, 5, 30, 31])
    p = model.plan(c, np.zeros(len(c)), 0)
    mask = np.array([True, False, True, False, True])
    for whole in (p, model.charger.of(c)):
        some, rest = take(whole, mask), take(whole, np.flatnonzero(~mask))
        for f in dataclasses.fields(whole):
            column = getattr(whole, f.name)
            assert np.array_equal(getattr(some, f.name), column[[0, 2, 4]], equal_nan=True)
            assert getattr(some, f.name).dtype == column.dtype
        back = join([take(whole, np.array([0, 1])), take(whole, np.array([2, 3, 4]))])
        assert all(np.array_equal(getattr(back, f.name), getattr(whole, f.name),
                                  equal_nan=True) for f in dataclasses.fields(whole))
        assert len(getattr(rest, dataclasses.fields(whole)[0].name)) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_going_offline_past_the_deadline_is_not_looked_for_and_decides_nothing(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions of a churning fleet planned with going offline looked for only until just
    past the deadline, and looked for as far as it goes: their outcomes at any cut up to
    the deadline, and their margins, are the same; a look that stopped short of the
    deadline would change them (so the comparison can fail)."""
    import dataclasses

    from edgetwin.emulator import session
    from edgetwin.emulator.engine import Engine
    from edgetwin.emulator.margins import Cut, timing
    from edgetwin.emulator.scenario import load_scenario

    root = Path(__file__).resolve().parents[1] / "scenarios"
    # churn epochs of 300 s: several start within a session's 1,800 s deadline
    s = load_scenario(root / "thousand_clients.yaml", [f"orchestration.mode={mode}",
                                                       "availability.mean_session_s=1200"])
    model = Engine(s, root, s.seed).model
    t0_s, deadline_s = 5 * 3600.0, s.orchestration.deadline_s
    c = np.arange(1000)
    c = c[model.availability.online(c, t0_s)]
    t0 = np.full(len(c), t0_s)

    def planned(beyond_s: float) -> session.Planned:
        monkeypatch.setattr(session, "OFFLINE_BEYOND_DEADLINE_S", beyond_s)
        return model.plan(c, t0, 7)

    looked, whole, short = planned(1.0), planned(np.inf), planned(-deadline_s / 2)
    past = np.isfinite(whole.offline_s) & (whole.offline_s > t0 + deadline_s + 1.0)
    assert past.sum() > len(c) // 10 and np.all(np.isinf(looked.offline_s[past]))
    assert np.array_equal(looked.offline_s[~past], whole.offline_s[~past])

    def decided(p: session.Planned) -> list[np.ndarray]:
        out = []
        for share in (0.25, 0.5, 1.0):
            cut_s = t0 + share * deadline_s
            o = model.account(p, cut_s, DEADLINE)
            cut = Cut(at_s=cut_s, status=np.full(len(c), DEADLINE),
                      stale_s=t0 + 0.8 * deadline_s if mode == "async" else None)
            t = timing(p, o.status, cut, model.costs.session_cv[model.fleet.cost_index[c]])
            out += [o.status, o.end_s, o.energy_j] + [getattr(t, f.name)
                                                      for f in dataclasses.fields(t)]
        return out

    assert all(np.array_equal(a, b) for a, b in zip(decided(looked), decided(whole),
                                                     strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(decided(short), decided(whole),
                                                         strict=True))
