"""A client's attributes are keyed draws through each distribution's quantiles: the same
whether the fleet is held whole or worked out per client as it is asked, and what a
run writes is kept only for the clients it wrote."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from scipy import stats

from edgetwin.emulator import fleet as fleet_module
from edgetwin.emulator.columns import Computed, Kept, state
from edgetwin.emulator.dist import Dist
from edgetwin.emulator.engine import Engine, Results
from edgetwin.emulator.scenario import load_scenario

from .emulator_helpers import SCENARIOS, build, run, small_scenario

U = (np.arange(1, 2_000) - 0.5) / 2_000  # a grid over (0, 1)


def _digest(r: Results) -> str:
    h = hashlib.sha256()
    for name in sorted(r.sessions):
        h.update(name.encode() + np.ascontiguousarray(r.sessions[name]).tobytes())
    for row in r.rounds:
        h.update(repr(row).encode())
    return h.hexdigest()


VARIANTS: dict[str, dict[str, Any]] = {
    "sync": {"fleet__clients": 300, "orchestration__clients_per_round": 10, "stop__rounds": 8},
    "async": {"fleet__clients": 300, "orchestration__mode": "async", "stop__rounds": 12},
    "flexlora, dirichlet, hot, charging only": {
        "fleet__clients": 200, "workload__algorithm": "flexlora", "stop__rounds": 12,
        "orchestration__clients_per_round": 8,
        "data": {"dirichlet_alpha": 0.5, "total_examples": 20_000, "local_epochs": 1.0},
        "thermal__hot": True, "availability__charging_only": True,
        "fleet__groups": [
            {"name": "phones", "profile": "flagship-phone-sd8gen3", "share": 0.6,
             "plugged_share": 0.6, "setup": {"batch": 2, "seq": 64},
             "lora_rank": {"dist": "choice", "values": [4, 8, 16]}},
            {"name": "nanos", "profile": "jetson-nano-4gb", "share": 0.4,
             "setup": {"batch": 1, "seq": 64, "grad_accum": 2}}]},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_fleet_worked_out_per_client_runs_as_one_held_whole(
        variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = small_scenario(**VARIANTS[variant])
    whole = run(data)
    monkeypatch.setattr(fleet_module, "holds_whole", lambda s, n: False)
    per_client = run(data)
    assert whole.fleet.whole and not per_client.fleet.whole
    assert isinstance(per_client.fleet.speed, Computed)
    assert len(whole.sessions["client"]) >= 60
    assert _digest(per_client) == _digest(whole)


def test_a_client_s_draws_do_not_depend_on_who_else_is_asked() -> None:
    data = small_scenario(fleet__clients=1_000)
    data["fleet"]["groups"][1]["network"] = {"link": "wifi"}  # links drawn per group
    s = build(data)
    f = Engine(s, SCENARIOS, 3).fleet
    assert f.whole
    lazy = fleet_module.build_fleet(s, Engine(s, SCENARIOS, 3).streams, SCENARIOS, whole=False)
    some = np.array([999, 0, 417, 600, 417])
    for name in ("speed", "usable_ram_mb", "downlink_mbps", "latency_s", "tz_h",
                 "window_start_h", "examples", "cost_index"):
        assert np.array_equal(getattr(lazy, name)[some], getattr(f, name)[some]), name
    assert np.array_equal(lazy.battery_j[some], f.battery_j[some])
    for one in (0, 417, np.int64(999)):  # one client reads as an element of the array
        assert lazy.downlink_mbps[one] == f.downlink_mbps[one] and lazy.group[one] == f.group[one]
        assert lazy.battery_j[one] == f.battery_j[one]


@pytest.mark.parametrize(("dist", "reference"), [
    (Dist("normal", mean=5.0, std=2.0), stats.norm(5.0, 2.0)),
    (Dist("lognormal", mean=80.0, cv=0.5),
     stats.lognorm(s=np.sqrt(np.log1p(0.25)), scale=80.0 / np.sqrt(1.25))),
    (Dist("uniform", low=6.0, high=16.0), stats.uniform(6.0, 10.0)),
])
def test_quantiles_are_the_distributions(dist: Dist, reference: Any) -> None:
    assert np.allclose(dist.quantile(U), reference.ppf(U), rtol=1e-12, atol=1e-12)


def test_a_lognormal_has_the_mean_and_cv_it_is_given_and_clips() -> None:
    x = Dist("lognormal", mean=80.0, cv=0.5).quantile(U)
    assert np.mean(x) == pytest.approx(80.0, rel=0.01)
    assert np.std(x) / np.mean(x) == pytest.approx(0.5, rel=0.03)
    clipped = Dist("lognormal", mean=80.0, cv=0.5, low=50.0, high=100.0).quantile(U)
    assert clipped.min() == 50.0 and clipped.max() == 100.0


def test_choices_come_in_their_weights() -> None:
    weighted = Dist("choice", values=(4.0, 8.0, 16.0), weights=(0.5, 0.3, 0.2)).quantile(U)
    share = [np.mean(weighted == v) for v in (4.0, 8.0, 16.0)]
    assert share == pytest.approx([0.5, 0.3, 0.2], abs=1e-3)
    even = Dist("choice", values=(-8.0, 0.0, 5.5)).quantile(U)
    assert [np.mean(even == v) for v in (-8.0, 0.0, 5.5)] == pytest.approx([1 / 3] * 3, abs=1e-3)
    assert Dist("const", value=3.0).quantile(U).tolist() == [3.0] * len(U)


def test_kept_state_holds_only_the_clients_written() -> None:
    kept = Kept(50_000_000)
    battery = kept.add(lambda c: c * 2.0)
    count = kept.add(lambda c: np.zeros(c.shape, dtype=np.int64), np.int64)
    ids = np.array([5, 49_999_999, 123_456])
    assert battery[ids].tolist() == [10.0, 99_999_998.0, 246_912.0]  # defaults
    battery[ids] = np.array([1.0, 2.0, 3.0])
    count[ids[:2]] += 1
    count[ids[:1]] += 1
    assert battery[np.array([123_456, 7, 5])].tolist() == [3.0, 14.0, 1.0]
    assert count[np.array([5, 49_999_999, 123_456, 8])].tolist() == [2, 1, 0, 0]
    assert kept.size == 3 and len(battery.values) <= 16  # three clients, not fifty million
    battery[np.arange(1_000, 1_100)] = 7.0
    assert kept.size == 103 and battery[np.array([1_050])].tolist() == [7.0]
    assert battery[ids].tolist() == [1.0, 2.0, 3.0]  # kept through the growth


def test_kept_columns_written_at_once_are_those_written_one_by_one() -> None:
    """Columns written together work out no defaults for what they write over, and
    leave the others' defaults for the clients new to them."""
    asked: list[int] = []

    def traced(c: np.ndarray) -> np.ndarray:
        asked.extend(c.tolist())
        return c * 2.0

    kept = Kept(1_000)
    battery, temp = kept.add(traced), kept.add(lambda c: c + 0.5)
    other = kept.add(lambda c: -c * 1.0)
    ids = np.array([7, 3, 7, 900])
    kept.write(ids, {battery: np.array([1.0, 2.0, 3.0, 4.0]), temp: np.full(4, 9.0)})
    assert asked == []  # written over at once: no default worked out
    assert battery[np.array([7, 3, 900, 5])].tolist() == [3.0, 2.0, 4.0, 10.0]
    assert temp[ids].tolist() == [9.0] * 4 and other[ids].tolist() == [-7.0, -3.0, -7.0, -900.0]
    assert kept.size == 3
    many = np.arange(100, 140)  # forty more: the columns grow past their first 16 entries
    asked.clear()
    kept.write(many, {battery: many * 10.0, temp: many + 0.25})
    assert kept.size == 43 and asked == []
    assert battery[many].tolist() == (many * 10.0).tolist()
    assert temp[many].tolist() == (many + 0.25).tolist()
    assert other[many].tolist() == (-many * 1.0).tolist()
    assert battery[np.array([7, 3, 900])].tolist() == [3.0, 2.0, 4.0]  # kept through the growth


def test_a_client_placed_by_one_column_works_out_the_others_defaults_only_when_read() -> None:
    """Writing one column of new clients (when their session ends, say) works out no
    default of the others; each reads its default until written, then what was written."""
    asked: list[int] = []

    def traced(c: np.ndarray) -> np.ndarray:
        asked.extend(c.tolist())
        return c * 2.0

    kept = Kept(1_000)
    battery, busy = kept.add(traced), kept.add(lambda c: np.zeros(c.shape))
    ids = np.arange(10, 50)  # past the first 16 places: the columns grow
    busy[ids] = 5.0
    assert asked == [] and kept.size == 40
    assert battery[ids[:3]].tolist() == [20.0, 22.0, 24.0] and asked == [10, 11, 12]
    battery[ids[:2]] = np.array([1.0, 2.0])
    asked.clear()
    assert battery[ids[:3]].tolist() == [1.0, 2.0, 24.0] and asked == [12]
    assert busy[np.array([10, 5])].tolist() == [5.0, 0.0]


def test_a_constant_default_is_read_without_flags_whole_or_kept() -> None:
    """A column whose default is one number holds it at every place not written, through
    growth and places given by another column's writes, and reads as a whole array would."""
    kept = Kept(1_000)
    busy, other = kept.add(7.5), kept.add(lambda c: c * 1.0)
    count = kept.add(3, np.int64)
    assert busy.written is None and other.written is not None
    other[np.arange(100, 140)] = 1.0  # places for forty clients: the columns grow past 16
    ids = np.array([100, 139, 5, 0, 999])
    assert busy[ids].tolist() == [7.5] * 5 and count[ids].tolist() == [3] * 5
    busy[np.array([139, 5])] = np.array([1.0, 2.0])
    count[np.array([100])] += 1
    assert busy[ids].tolist() == [7.5, 1.0, 2.0, 7.5, 7.5]
    assert count[ids].tolist() == [4, 3, 3, 3, 3] and busy[np.int64(5)] == 2.0
    whole = state(1_000, 7.5, None)
    assert isinstance(whole, np.ndarray) and whole.tolist() == [7.5] * 1_000
    assert state(4, 3, None, np.int64).tolist() == [3] * 4


@pytest.mark.parametrize(("clients", "sampled"), [(3_000, False), (300_000, True)])
def test_a_group_that_cannot_fit_a_session_is_named_before_the_run(
        clients: int, sampled: bool) -> None:
    data = small_scenario(fleet__clients=clients)
    data["fleet"]["groups"][1]["spread"] = {"usable_ram": 0.01}  # 1 % of a Nano's RAM
    e = Engine(build(data), SCENARIOS, 3)
    assert e.fleet.whole == (clients <= fleet_module.EAGER_CLIENTS)
    lines = [w for w in e.warnings if "less usable RAM" in w]
    assert len(lines) == 1 and "fleet group 'nanos'" in lines[0]
    assert f"100% of its {int(clients * 0.4):,} clients" in lines[0]
    assert ("(judged on 100,000 of them)" in lines[0]) == sampled


def _memory_check_reads(f: Any) -> tuple[list[str], list[int]]:
    """The memory check's warnings for fleet `f`, and the groups whose clients it read
    (their usable RAM traced while it runs)."""
    ram = f.usable_ram_mb
    read: list[int] = []

    class Traced:
        def __getitem__(self, c: np.ndarray) -> Any:
            read.extend(np.unique(f.group[c]).tolist())
            return ram[c]

    f.usable_ram_mb = Traced()
    try:
        return fleet_module.memory_warnings(f), read
    finally:
        f.usable_ram_mb = ram


def test_the_memory_check_looks_only_at_groups_where_a_client_could_be_short() -> None:
    """A group whose least usable RAM (its profile's, times the least of its spread)
    holds every session is judged without reading a client; the others are read."""
    data = small_scenario(fleet__clients=300_000)
    data["fleet"]["groups"][1]["spread"] = {"usable_ram": 0.01}
    f = Engine(build(data), SCENARIOS, 3).fleet
    warnings, read = _memory_check_reads(f)
    assert len(warnings) == 1
    assert read == [1]  # the short group only
    ram = f.usable_ram_mb
    least = [fleet_module.least_usable_ram_mb(f, g) for g in range(len(f.counts))]
    for g in range(len(f.counts)):
        ids = np.arange(sum(f.counts[:g]), sum(f.counts[:g + 1]))
        assert ram[ids].min() >= least[g]


def test_each_group_is_held_to_its_own_sessions_peak_memory() -> None:
    """A group is read only where its own sessions' peak could pass its least usable
    RAM: in the thousand-client fleet the flagship phones (4,000 MB at least, their
    sessions 3,142 MB at most) are not read for the AGX Orins' 10,193 MB sessions."""
    s = load_scenario(SCENARIOS / "thousand_clients.yaml", ["fleet.clients=300000"])
    f = Engine(s, SCENARIOS, 3).fleet
    table = f.cost_table
    warnings, read = _memory_check_reads(f)
    assert warnings == []
    could = [g for g in range(len(f.counts)) if table.peak_memory_mb[table.group == g].max()
             > fleet_module.least_usable_ram_mb(f, g)]
    assert read == could and 0 not in could and table.peak_memory_mb.max() > 4_000


@pytest.mark.parametrize(("clients", "per_round", "whole"), [
    (200_000, 10, True),  # small enough to hold whatever the run asks
    (1_000_000, 1_000, False),  # 1.3 candidates a client: worked out per client
    (1_000_000, 3_200, True),  # 4.2 a client
    (1_000_000, 10_000, True),  # 13 a client
    (5_000_000, 10_000, False)])  # 2.6 a client
def test_a_large_fleet_is_held_whole_where_each_client_is_drawn_several_times(
        clients: int, per_round: int, whole: bool) -> None:
    data = small_scenario(fleet__clients=clients)
    data["orchestration"].update(clients_per_round=per_round, overcommit=0.3)
    data["selection"] = {"pool_factor": 10}
    data["stop"] = {"rounds": 100}
    s = build(data)
    per_client = s.expected_sessions * 10 / clients
    assert fleet_module.holds_whole(s, clients) == whole, f"{per_client:.2f} a client"


def test_attributes_drawn_by_group_are_each_groups_own_distribution() -> None:
    """A column of per-group distributions (constants read from a table, each distinct
    distribution drawn once for all its groups) gives every client its own group's
    quantile of its own uniform, in any order of clients."""
    from edgetwin.emulator.draws import Draws

    groups = [{"name": f"g{i}", "profile": "flagship-phone-sd8gen3", "share": 0.2,
               "setup": {"batch": 2, "seq": 64}, "network": {"downlink_mbps": d}}
              for i, d in enumerate([50, {"dist": "lognormal", "mean": 80, "cv": 0.8, "low": 1},
                                     {"dist": "uniform", "low": 1, "high": 9}, 50,
                                     {"dist": "lognormal", "mean": 80, "cv": 0.8, "low": 1}])]
    engine = Engine(s := build(small_scenario(fleet__clients=500, fleet__groups=groups)),
                    SCENARIOS, 4)
    f = engine.fleet
    d = Draws(s, engine.streams, f.profiles, f.counts)
    c = np.random.default_rng(2).permutation(500)
    got = d.downlink_mbps(c)
    dists = [g.network.downlink_mbps for g in s.fleet.groups]
    g = d.group(c)
    want = np.array([dists[gi].quantile(d.uniform(np.array([ci]), "downlink_mbps"))[0]
                     for ci, gi in zip(c.tolist(), g.tolist(), strict=True)])
    assert got.tobytes() == want.tobytes()
    assert len(set(got[g == 0].tolist())) == 1 and len(set(got[g == 1].tolist())) > 50


def test_a_check_in_hands_on_the_chargers_of_those_online() -> None:
    """Who is online, worked out with the local hour shared by the daily window and the
    charger, is the three checks made one by one; the chargers handed on are those of
    the clients online, as the fleet's columns give them."""
    from edgetwin.emulator.availability import in_daily_window

    data = small_scenario(fleet__clients=400, availability__online_fraction=0.6,
                          availability__mean_session_s=3600.0)
    data["availability"]["diurnal"] = {"window_length_h": 12}
    engine = Engine(build(data), SCENARIOS, 5)
    av = engine.model.availability
    c = np.random.default_rng(3).permutation(400)[:300]
    for t in (0.0, 30_000.0, 61_000.0):
        on, chargers = av.online_with_chargers(c, t)
        assert chargers is not None and 0 < on.sum() < len(c)
        times = np.full(len(c), t)
        alone = in_daily_window(times, av.tz_h[c], av.window_start_h[c], av.window_length_h[c])
        alone &= av.charger.on_for(c, times)
        alone &= av._churn_on(c, av._epoch(c, times))
        assert on.tolist() == alone.tolist() and av.online(c, t).tolist() == alone.tolist()
        direct = engine.model.charger.of(c[on])
        for name in ("charge_w", "tz_h", "start_h", "length_h"):
            assert getattr(chargers, name).tobytes() == getattr(direct, name).tobytes(), name
