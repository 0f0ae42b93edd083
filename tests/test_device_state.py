"""Device state that behaves like hardware: a throttled device draws less power, a
charger that covers the load keeps a device running, and the defaults follow how
production federated learning runs (on idle, charging devices; links by kind)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import yaml

from edgetwin.emulator.config import LINK_DEFAULTS
from edgetwin.emulator.engine import Engine, Results
from edgetwin.emulator.scenario import parse_scenario, resolved
from edgetwin.emulator.thermal import ThermalArrays
from edgetwin.emulator.timeline import step_timeline
from edgetwin.profiles.device import load_profile

from .emulator_helpers import SCENARIOS

H = 3600.0
PHONES = ("flagship-phone-sd8gen3", "hi-nova-9-pro")
SKIN_C = (42.0, 49.5)  # Snapdragon 8 Gen 3 phones under sustained stress, measured


def one_device(profile: str, *, steps: int | None = None, plugged_share: float = 0.0,
               **over: Any) -> dict[str, Any]:
    """One device training Gemma-3-270M LoRA in one long session, always online, its
    compute exactly the prediction."""
    data: dict[str, Any] = {
        "name": "one-device", "seed": 5,
        "fleet": {"clients": 1, "groups": [
            {"name": "one", "profile": profile, "count": 1, "setup": {"batch": 4, "seq": 128},
             "spread": {"speed": 1.0, "background_load": 0.0},
             "plugged_share": plugged_share}]},
        "workload": {"model": "gemma-3-270m", "lora_targets": ["q_proj", "k_proj", "v_proj",
                                                               "o_proj"]},
        "data": {"local_steps": steps or 10, "max_local_steps": 1_000_000},
        "availability": {"mean_session_s": None, "online_fraction": 1.0,
                         "charging_only": plugged_share > 0},
        "battery": {"initial_pct": 100.0, "min_pct_to_join": 5.0, "abort_below_pct": 5.0},
        "orchestration": {"clients_per_round": 1, "deadline_s": 10 * 24 * H},
        "stop": {"rounds": 1},
        "variability": {"enabled": False},  # the device model alone, at its prediction
    }
    for key, value in over.items():
        data[key] = {**data.get(key, {}), **value}
    return data


def engine(data: dict[str, Any]) -> Engine:
    s = parse_scenario(data, "one-device.yaml", SCENARIOS)
    return Engine(s, SCENARIOS, s.seed or 0)


def steps_for(data: dict[str, Any], hours: float) -> int:
    """Local steps that take at least `hours` at full speed."""
    return int(hours * H / float(engine(data).model.costs.step_s[0])) + 1


def session(data: dict[str, Any]) -> dict[str, Any]:
    r: Results = engine(data).run()
    assert len(r.sessions["client"]) == 1
    return {k: v[0] for k, v in r.sessions.items()}


@pytest.mark.parametrize("profile", PHONES)
def test_a_throttled_phone_draws_less_power_and_no_more_energy_per_step(profile: str) -> None:
    """Two hours of training on battery, step by step: no step costs more energy than a
    cold one, and the phone settles below the throttle-full temperature."""
    model = engine(one_device(profile)).model
    tl = step_timeline(model, 0, steps_for(one_device(profile), 2.0), plugged=False)
    th = load_profile(profile).thermal
    assert tl.end_s[-1] >= 2 * H
    assert np.all(tl.energy_j <= tl.energy_j[0] * (1 + 1e-9))
    assert np.all(np.diff(tl.power_w) <= 1e-9)  # heating only ever slows it and cools its power
    assert tl.temp_c.max() < th.throttle_full_c
    assert tl.battery_pct[-1] < 100.0
    if profile == "flagship-phone-sd8gen3":  # it does throttle, into the published skin range
        assert tl.speed[-1] < 0.9 and tl.energy_j[-1] < 0.9 * tl.energy_j[0]
        assert SKIN_C[0] <= tl.temp_c[-1] <= SKIN_C[1]


def test_a_run_records_the_session_state_in_client_sessions() -> None:
    """The same two hours as one session of a run: client_sessions.csv has its start and
    end temperature, time throttled, start and end charge and whether it was plugged."""
    data = one_device("flagship-phone-sd8gen3")
    data["data"]["local_steps"] = steps_for(data, 2.0)
    row = session(data)
    assert row["status"] == 0  # completed
    model = engine(data).model
    cold_j = float(model.costs.busy_w[0] * model.costs.step_s[0])
    assert row["energy_j"] / row["steps"] < cold_j
    tl = step_timeline(model, 0, int(row["steps"]), plugged=False,  # the same steps, one by one
                       factor=float(row["compute_factor"]))
    io_j = float(model.io_w[0]) * (row["download_s"] + row["upload_s"])
    assert tl.energy_j.sum() == pytest.approx(row["energy_j"] - io_j, rel=1e-6)
    cap_j = float(model.fleet.battery_capacity_j[0])
    assert row["battery_end_pct"] == pytest.approx(100 * (1 - row["energy_j"] / cap_j), abs=0.01)
    th = load_profile("flagship-phone-sd8gen3").thermal
    assert row["temp_start_c"] == th.ambient_c
    assert th.throttle_start_c < row["temp_end_c"] < th.throttle_full_c
    assert 0.8 * row["compute_s"] < row["throttled_s"] < row["compute_s"]
    assert row["battery_start_pct"] == 100.0
    assert row["on_charger"] == 0


@pytest.mark.parametrize("profile", ["laptop-x86-8core", "flagship-phone-sd8gen3"])
def test_a_device_on_a_charger_that_covers_its_load_trains_for_a_day(profile: str) -> None:
    """A day of training on the device's own charger: no battery abort, charge kept. The
    old scenario-wide 15 W charger (one setting away) runs a laptop's battery down."""
    data = one_device(profile, plugged_share=1.0, battery={"initial_pct": 20.0})
    data["data"]["local_steps"] = steps_for(data, 24.0)
    row = session(data)
    assert row["status"] == 0 and row["on_charger"] == 1
    assert row["end_s"] - row["start_s"] >= 24 * H
    assert row["battery_end_pct"] >= row["battery_start_pct"]
    if profile == "laptop-x86-8core":
        data["battery"]["charge_w"] = 15.0
        assert session(data)["status"] == 4  # battery


def test_a_hot_phone_charges_slower() -> None:
    th = ThermalArrays(*(np.full(3, v) for v in (25.0, 6.0, 400.0, 42.0, 52.0, 0.55, 2.0, 0.3)))
    share = th.charge_share(np.array([30.0, 47.0, 60.0]))
    assert list(share) == pytest.approx([1.0, 0.65, 0.3])
    power = th.busy_power_w(np.full(3, 6.0), th.speed_factor(np.array([30.0, 47.0, 60.0])))
    assert list(power) == pytest.approx([6.0, 6.0 * 0.775 ** 2, 6.0 * 0.55 ** 2])


def test_defaults_follow_production_federated_learning() -> None:
    """Only charging devices train, each profile brings its own charger, boards are on
    mains, and a group's link is cellular with Speedtest's medians unless it says wifi."""
    data = one_device("flagship-phone-sd8gen3", plugged_share=0.3)
    del data["availability"]["charging_only"]
    data["fleet"]["groups"].append({"name": "boards", "profile": "jetson-orin-nano-8gb",
                                    "count": 1, "plugged_share": 0.3,
                                    "network": {"link": "wifi", "uplink_mbps": 7.0}})
    data["fleet"]["clients"] = 2
    s = parse_scenario(data, "defaults.yaml", SCENARIOS)
    assert s.availability.charging_only is True and s.battery.charge_w is None
    assert s.warnings == ("fleet.groups[1].plugged_share: jetson-orin-nano-8gb has no battery "
                          "and runs on mains all day, so this is ignored",)
    phone, board = s.fleet.groups
    assert phone.network.link == "cellular" and board.network.link == "wifi"
    rng = np.random.default_rng(0)
    for name, median in (("uplink_mbps", 14.8), ("downlink_mbps", 105.7)):
        draws = getattr(phone.network, name).quantile(rng.uniform(size=40_000))
        assert np.median(draws) == pytest.approx(median, rel=0.03)
    assert board.network.downlink_mbps == LINK_DEFAULTS["wifi"]["downlink_mbps"]
    assert board.network.uplink_mbps.value == 7.0  # given, so kept
    e = Engine(s, SCENARIOS, 0)
    assert list(e.fleet.plug_length_h) == [pytest.approx(7.2), 24.0]  # the board: mains
    assert list(e.model.charge_w) == [20.0, 0.0]
    online = e.model.availability.online(np.array([0, 1]), np.full(2, 12 * H))
    assert list(online) == [False, True]  # noon: the phone is off its charger


def test_the_resolved_scenario_keeps_the_link_defaults() -> None:
    data = one_device("flagship-phone-sd8gen3")
    data["fleet"]["groups"][0]["network"] = {"link": "wifi"}
    s = parse_scenario(data, "wifi.yaml", SCENARIOS)
    text = resolved(s, {})
    again = yaml.safe_load(text)
    again.pop("run")
    s2 = parse_scenario(again, "again.yaml", SCENARIOS)
    assert s2.fleet.groups[0].network == s.fleet.groups[0].network
    assert s2.fleet.groups[0].network.uplink_mbps == LINK_DEFAULTS["wifi"]["uplink_mbps"]


def test_every_shipped_battery_charger_and_throttle_figure_has_its_own_source() -> None:
    """The figures this model rests on name their source (or say they are assumed) under
    their own key, not only under a parent's blanket entry."""
    from edgetwin.profiles.device import shipped_profiles

    for name in shipped_profiles():
        p = load_profile(name)
        keys = ["thermal.power_exponent"]
        if p.battery is not None:
            keys += ["battery", "battery.charge_w", "battery.hot_charge_share"]
        for key in keys:
            entry = p.provenance.get(key)
            assert entry is not None and entry.source, f"{name}: {key}"
    flagship = load_profile("flagship-phone-sd8gen3").battery
    assert flagship is not None and 17.9 <= flagship.capacity_wh <= 21.0


def test_a_charger_counts_only_while_plugged_in_during_a_session() -> None:
    """On battery by default (charging_only false here): a laptop whose window closes a
    minute into a day-long session runs its battery down; a phone whose window opens
    half an hour in charges from then on."""
    laptop = one_device("laptop-x86-8core", plugged_share=1 / 24,
                        availability={"charging_only": False, "plug_start_h": 23.02},
                        battery={"initial_pct": 20.0})
    laptop["data"]["local_steps"] = steps_for(laptop, 24.0)
    row = session(laptop)
    assert row["on_charger"] == 1 and row["status"] == 4  # battery
    phone = one_device("flagship-phone-sd8gen3", plugged_share=0.3,
                       availability={"charging_only": False, "plug_start_h": 0.5},
                       battery={"initial_pct": 80.0})
    phone["data"]["local_steps"] = steps_for(phone, 2.0)
    charged = session(phone)
    phone["fleet"]["groups"][0]["plugged_share"] = 0.0
    unplugged = session(phone)
    assert charged["on_charger"] == 0 and charged["status"] == unplugged["status"] == 0
    assert charged["energy_j"] == unplugged["energy_j"]
    assert charged["battery_end_pct"] > unplugged["battery_end_pct"] + 20


def test_a_session_cut_before_it_heats_up_reports_no_throttling() -> None:
    data = one_device("flagship-phone-sd8gen3", orchestration={"deadline_s": 180.0})
    data["data"]["local_steps"] = steps_for(data, 1.0)
    row = session(data)
    th = load_profile("flagship-phone-sd8gen3").thermal
    assert row["status"] == 2  # deadline, three minutes in: throttling starts after four
    assert row["throttled_s"] == 0 and row["temp_end_c"] < th.throttle_start_c


def test_the_next_session_starts_from_the_charge_the_last_one_left() -> None:
    data = one_device("flagship-phone-sd8gen3", stop={"rounds": 3})
    r = engine(data).run()
    start, end = r.sessions["battery_start_pct"], r.sessions["battery_end_pct"]
    assert len(start) == 3 and np.all(end < start)
    # between sessions only the standby drain (0.05 W) and rounding: within 0.01 points
    assert start[1:] == pytest.approx(end[:-1], abs=0.01)
    assert np.all(r.sessions["temp_start_c"][1:] <= r.sessions["temp_end_c"][:-1])
