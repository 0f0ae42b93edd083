"""The engine's fast paths against the plain algorithms they stand for: each gives the
same numbers, bit for bit, so that speed never changes a result (the golden outputs
check whole runs; these check each path where it is easy to see why)."""

from __future__ import annotations

import dataclasses
import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from edgetwin.common.arrays import distinct_ids, sort_ids
from edgetwin.emulator import availability, checkin
from edgetwin.emulator.availability import Availability, Chargers
from edgetwin.emulator.columns import column
from edgetwin.emulator.draws import Draws
from edgetwin.emulator.engine import Engine
from edgetwin.emulator.output import fastcsv, files
from edgetwin.emulator.selection import policies
from edgetwin.emulator.selection import view as view_module
from edgetwin.emulator.selection.params import DeadlineAwareParams
from edgetwin.emulator.streams import Streams

from .emulator_helpers import SCENARIOS, build, small_scenario


def _engine(clients: int = 300, thin: bool = True) -> Engine:
    """A fleet, some of it busy, with thin availability (churn, daily windows,
    batteries: every draw counts) or ample (most launches stop drawing early)."""
    data = small_scenario(fleet__clients=clients, availability__online_fraction=0.5,
                          availability__mean_session_s=3600.0)
    if thin:
        data["availability"]["diurnal"] = {
            "timezones_h": {"dist": "choice", "values": [0, 8]},
            "window_start_h": {"dist": "uniform", "low": 0, "high": 24},
            "window_length_h": 10}
    else:
        data["availability"] = {"online_fraction": 1.0, "mean_session_s": None}
    s = build(data)
    engine = Engine(s, SCENARIOS, 11)
    rng = np.random.default_rng(0)
    engine.busy_until_s[rng.choice(clients, clients // 5, replace=False)] = 1e9
    return engine


def _loop_pool(engine: Engine, now_s: np.ndarray, k: np.ndarray, launch_id: np.ndarray,
               redraws: int = checkin.REDRAWS, held: tuple[np.ndarray, np.ndarray] | None = None
               ) -> set[tuple[int, int, float]]:
    """The check-in as a plain loop: each launch draws `pool_factor` per slot, again
    while fewer than that are eligible, each client once; (launch, client, charge)."""
    n, model = engine.fleet.n, engine.model
    want = np.ceil(engine.scenario.selection.pool_factor * k).astype(np.int64)
    out: set[tuple[int, int, float]] = set()
    for j in range(len(k)):
        seen: set[int] = set()
        have = 0
        for r in range(redraws):
            if k[j] == 0 or have >= want[j] or (r > 0 and want[j] >= n):
                break
            size = min(int(want[j]), n)
            draw = np.arange(size)
            u = engine.streams.uniform("checkin", (launch_id[j] * checkin.REDRAWS + r) << 32
                                       | draw)
            drawn = draw if size >= n else np.minimum((u * n).astype(np.int64), n - 1)
            for c in dict.fromkeys(drawn.tolist()):
                if c in seen:
                    continue
                seen.add(c)
                t = float(now_s[j])
                if engine.busy_until_s[c] > t:
                    continue
                if held is not None and any(h == c and at < t for h, at in zip(*held,
                                                                            strict=True)):
                    continue
                one, when = np.array([c]), np.array([t])
                if not model.availability.online(one, when)[0]:
                    continue
                charge = model.battery_at(one, when)
                if model.charged_enough(one, charge)[0]:
                    out.add((j, c, float(charge[0])))
                    have += 1
    return out


def _pool(sel: checkin.Selection) -> set[tuple[int, int, float]]:
    p = sel.pool
    entries = list(zip(p.launch.tolist(), p.clients.tolist(), p.battery_j.tolist(),
                       strict=True))
    assert len(set(entries)) == len(entries), "a client twice in one launch's pool"
    return set(entries)


@pytest.mark.parametrize("thin", [True, False])
def test_one_launch_pool_is_the_loops(thin: bool) -> None:
    engine = _engine(thin=thin)
    for k, t in ((10, 3_600.0), (4, 40_000.0), (30, 7_000.0)):  # 30 ask the whole fleet
        args = np.array([t]), np.array([k]), np.array([k + 1])
        assert _pool(checkin.launches(engine, *args)) == _loop_pool(engine, *args)


@pytest.mark.parametrize("thin", [True, False])
def test_a_batch_of_launches_with_held_clients_is_the_loops(thin: bool) -> None:
    engine = _engine(thin=thin)
    at = np.array([100.0, 200.0, 200.0, 5_000.0])
    k, ids = np.array([3, 1, 0, 6]), np.array([7, 8, 9, 10])
    cands = checkin.candidates(engine, at, k, ids)[1]  # drawn once, chosen per pass
    held = (np.array([4, 17, 30, 120]), np.array([150.0, 50.0, 4_000.0, 0.0]))
    assert _pool(checkin.choose(engine, cands, held)) == _loop_pool(engine, at, k, ids,
                                                                   held=held)
    assert _pool(checkin.choose(engine, cands)) == _loop_pool(engine, at, k, ids)


def test_the_loop_is_a_sharp_reference() -> None:
    """A check-in that drew one time fewer is told apart: thin availability makes every
    draw count."""
    engine = _engine()
    args = np.array([3_600.0]), np.array([10]), np.array([11])
    assert _pool(checkin.launches(engine, *args)) != _loop_pool(engine, *args, redraws=3)


@pytest.mark.parametrize("look_pairs", [1 << 20, 1])  # first looks of 29 epochs, or of 1
def test_churn_spells_end_where_an_epoch_by_epoch_walk_ends_them(
        look_pairs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(availability, "LOOK_PAIRS", look_pairs)
    n = 2_000
    av = Availability(Streams(5), tz_h=np.zeros(n), window_start_h=np.zeros(n),
                      window_length_h=np.full(n, 24.0),
                      charger=Chargers(charge_w=np.zeros(n), tz_h=np.zeros(n),
                                       start_h=np.zeros(n), length_h=np.zeros(n)),
                      column=partial(column, n, whole=True), charging_only=False,
                      mean_session_s=3600.0, online_fraction=0.9, trace=None)
    c = np.arange(n)
    t = np.full(n, 12_345.0)
    on = av.online(c, t)
    c, t = c[on], t[on]
    walked = np.full(len(c), np.inf)  # the plain walk: one epoch at a time
    epoch = np.floor((t + av.phase_s[c]) / av.epoch_s).astype(np.int64) + 1
    for i in range(len(c)):
        for e in range(int(epoch[i]), int(epoch[i]) + 400):
            if not av.streams.uniform("availability", c[i:i + 1], np.array([e]))[0] < 0.9:
                walked[i] = e * av.epoch_s - av.phase_s[c[i]]
                break
    assert np.array_equal(av.offline_at(c, t), walked)
    assert av.first_look_epochs == 29  # where 95 % of spells of nine epochs in ten online end
    assert (walked - t > 40 * av.epoch_s).any()  # spells longer than the first look


def test_the_whole_fleets_predicted_durations_are_each_clients_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet held whole has every client's predicted duration worked out once a large
    pool asks (a chunk of clients at a time): each the number the formula gives that
    client alone, worked out again when a recalibration corrects the costs in place; a
    small pool, or a fleet worked out per client (its columns computed when asked),
    keeps to the formula."""
    monkeypatch.setattr(view_module, "CHUNK_CLIENTS", 128)
    view = _engine(clients=500).clients
    rng = np.random.default_rng(4)
    few = rng.integers(0, 500, 20)  # under a sixteenth of the fleet
    assert view.predicted_duration_s(few).tobytes() == view._duration_s(few).tobytes()
    assert view._every_duration_s(len(few)) is None
    c = rng.integers(0, 500, 300)
    every = view._every_duration_s(len(c))
    assert every is not None and len(every) == 500
    assert view.predicted_duration_s(c).tobytes() == view._duration_s(c).tobytes()
    before = view.predicted_duration_s(c)
    view.costs.step_s[:] *= 3.0  # as periodic validation's recalibration corrects them
    assert view.predicted_duration_s(c).tobytes() == view._duration_s(c).tobytes()
    assert (view.predicted_duration_s(c) > before).all()
    assert view.predicted_duration_s(few).tobytes() == view._duration_s(few).tobytes()
    lazy = dataclasses.replace(view, speed=column(500, lambda c: view.speed[c], whole=False))
    assert lazy._every_duration_s(len(c)) is None
    assert lazy.predicted_duration_s(c).tobytes() == view._duration_s(c).tobytes()


def _uniforms(engine: Engine, launch: int, c: np.ndarray, _: np.ndarray) -> np.ndarray:
    return engine.streams.uniform("selection", np.int64(launch), c)


@pytest.mark.parametrize("clients", [40, 300])
def test_deadline_aware_looks_at_the_lowest_draws_first_and_chooses_the_same(
        clients: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """One launch's deadline-aware choice, from the durations of its lowest draws only,
    is the choice from every candidate's: where most fit, where few do (it looks at more,
    or at all of them), and where a whole group is too slow (the draws it passes over are
    not the lowest)."""
    engine = _engine(clients=clients, thin=False)
    slow = engine.fleet.group[np.arange(clients)] == 1
    for k, too_slow in ((5, False), (12, False), (5, True), (30, True)):
        view = engine.clients
        if too_slow:  # the second group's clients never fit
            speed = np.where(slow, 1e-9, np.asarray(engine.fleet.speed[np.arange(clients)]))
            view = dataclasses.replace(view, speed=speed)
        ctx = dataclasses.replace(engine.context(partial(_uniforms, engine, k)),
                                  clients=view, deadline_s=1e6, params=DeadlineAwareParams())
        pool = checkin.launches(engine, np.array([0.0]), np.array([k]), np.array([k])).pool
        chosen = policies.deadline_aware(ctx, pool)
        looked = policies._lowest_that_fit(ctx, pool)
        with monkeypatch.context() as m:
            m.setattr(policies, "_lowest_that_fit", lambda ctx, pool: None)
            every = policies.deadline_aware(ctx, pool)
        assert chosen.tolist() == every.tolist()
        assert looked is None or looked.tolist() == every.tolist()
        if too_slow and k == 5:  # the case it is for: a choice not of the lowest draws
            assert looked is not None
            lowest = np.sort(np.argsort(ctx.uniforms(pool.clients, pool.launch))[:k])
            assert lowest.tolist() != every.tolist()


def test_client_ids_sorted_by_16_bit_digits_are_numpys_sort() -> None:
    rng = np.random.default_rng(6)
    for below in (50, 1 << 16, 1 << 20, 10 ** 8, 1 << 32, 1 << 40):
        for m in (0, 7, 1000, 1024, 5000):
            ids = rng.integers(0, below, m)
            assert sort_ids(ids, below).tolist() == np.sort(ids).tolist()
            assert distinct_ids(ids, below).tolist() == np.unique(ids).tolist()


def test_fixed_local_steps_never_read_the_examples() -> None:
    """`data.local_steps` given: a fleet's local steps do not work out its clients'
    examples (a lognormal draw per client, wasted)."""
    engine = _engine(clients=50)

    class Unread:
        def __getitem__(self, c: object) -> None:
            raise AssertionError("examples read")

    f = engine.fleet
    d = Draws(engine.scenario, engine.streams, f.profiles, f.counts)
    assert d.local_steps(np.arange(50), Unread()).tolist() == [3] * 50  # type: ignore[arg-type]


def test_per_client_sums_over_the_fleet_or_its_distinct_clients_are_the_same() -> None:
    """A client's values summed by a count over the whole fleet or over the clients that
    have values (a fleet far larger than its sessions): the same clients, the same bits
    (each client's values added in the order given)."""
    rng = np.random.default_rng(5)
    client = rng.integers(0, 5_000, 20_000)
    value = rng.random(20_000) * 10.0 ** rng.integers(-3, 6, 20_000)
    counted = files._per_client(client, value, 5_000)
    distinct = files._per_client(client, value, 10**9)  # far more clients than values
    assert np.array_equal(counted[0], np.unique(client))
    assert np.array_equal(counted[0], distinct[0])
    assert counted[1].tobytes() == distinct[1].tobytes()
    one = int(client[0])
    assert counted[1][counted[0] == one][0] == sum(value[client == one].tolist())


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_csv_written_in_chunks_is_the_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 workers: int) -> None:
    """Chunks laid out one after another or on threads, written in order: the same
    bytes as the whole file encoded at once; a chunk's error reaches the caller."""
    rng = np.random.default_rng(1)
    columns = [fastcsv.Column(rng.normal(size=50) * 1e3, decimals=3),
               fastcsv.Column(rng.integers(0, 2, 50), labels=["yes", "no"]),
               fastcsv.Column(np.where(rng.random(50) < 0.1, np.inf, rng.random(50)), 2)]
    monkeypatch.setattr(fastcsv, "CHUNK_ROWS", 7)
    monkeypatch.setattr(fastcsv, "WORKERS", workers)
    fastcsv.write(tmp_path / "t.csv", ["a", "b", "c"], columns)
    assert (tmp_path / "t.csv").read_bytes() == fastcsv.encode(["a", "b", "c"], columns)
    with pytest.raises(ValueError, match="NUL"):
        fastcsv.write(tmp_path / "bad.csv", ["a"], [fastcsv.Column(np.zeros(50), labels=["\0"])])


@pytest.mark.parametrize(("told", "workers"), [("1", 1), ("8", 2), ("", 2), ("x", 2)])
def test_csv_workers_keep_to_the_cores_and_to_one_thread_where_told(
        monkeypatch: pytest.MonkeyPatch, told: str, workers: int) -> None:
    """Two chunk workers on two cores or more, one where OMP_NUM_THREADS says one (a
    pool of processes is the parallelism); one on one core."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", told)
    assert fastcsv._workers() == workers
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert fastcsv._workers() == 1


def test_csv_numbers_are_pythons_to_the_last_digit() -> None:
    """Every number as `'%.{d}f' % x` writes it: ties and near-ties (the decimal
    expansions Python rounds on the exact binary value), large and negative numbers."""
    rng = np.random.default_rng(2)
    ties = np.array([0.125, 0.375, 2.5e-3, 1.0005, 1234.5675, -0.0625, 0.0, 0.5, 1.5, 2.5,
                     -0.5, -0.4, -2.5])
    near = (np.round(rng.random(2_000) * 1e5) + 0.5) / 1e3 * (1 + rng.normal(0, 1e-15, 2_000))
    wide = rng.normal(0, 1, 5_000) * 10.0 ** rng.integers(-4, 12, 5_000)
    values = np.concatenate([ties, near, wide, [np.inf, -np.inf]])
    for decimals in (0, 1, 2, 3, 6):
        text = fastcsv.encode(["x"], [fastcsv.Column(values, decimals)]).decode()
        want = [("inf" if v > 0 else "-inf") if np.isinf(v) else f"{v:.{decimals}f}"
                for v in values.tolist()]
        assert text.splitlines()[1:] == want


def test_csv_fields_of_every_width_line_up_as_pythons() -> None:
    """Rows whose fields differ in width (a slot as wide as the widest, the rest dropped):
    small numbers beside infinities, whole negative numbers, labels left unused, huge
    magnitudes past the float path."""
    rng = np.random.default_rng(3)
    n = 400
    small = np.where(rng.random(n) < 0.2, np.inf * rng.choice([-1, 1], n), rng.random(n))
    whole = rng.integers(-10**6, 10**6, n) * (rng.random(n) < 0.5)
    huge = rng.integers(-2**62, 2**62, n)
    codes = rng.integers(0, 2, n)
    labels = ["a", "bb", "unused-and-long"]
    for decimals in (1, 2, 3):
        columns = [fastcsv.Column(small, decimals), fastcsv.Column(codes, labels=labels),
                   fastcsv.Column(whole), fastcsv.Column(huge)]
        text = fastcsv.encode(["s", "l", "w", "h"], columns).decode()
        want = [",".join([("inf" if x > 0 else "-inf") if np.isinf(x) else f"{x:.{decimals}f}",
                          labels[k], str(w), str(h)])
                for x, k, w, h in zip(small.tolist(), codes.tolist(), whole.tolist(),
                                      huge.tolist(), strict=True)]
        assert text.splitlines() == ["s,l,w,h", *want]


def _splitmix_reference(seed: int, keys: tuple[int, ...]) -> float:
    """The counter-based uniform, one key at a time in plain integers."""
    mask = (1 << 64) - 1
    h = seed
    for k in keys:
        h ^= ((k & mask) * 0x9E3779B97F4A7C15) & mask
        h = (h + 0x9E3779B97F4A7C15) & mask
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & mask
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & mask
        h ^= h >> 31
    return min(((h >> 11) + 0.5) / float(1 << 53), float(np.nextafter(1.0, 0.0)))


def test_keyed_uniforms_are_splitmix_whatever_mix_of_scalars_and_arrays() -> None:
    s = Streams(42)
    seed = int(s._keys["fleet"])
    c = np.array([0, 1, 7, 123_456_789, -3])
    epochs = np.array([[2], [-1]])
    many = np.random.default_rng(8).integers(-2 ** 63, 2 ** 63 - 1, 2_000)
    for keys in [(5, c), (c, 5), (5, -2, c), (c, epochs), (7,), (3, 4), (np.array(5), c),
                 (np.int64(5), c), (5, many), (many, many)]:
        for _ in range(2):  # the second call finds its scalar keys mixed already
            got = s.uniform("fleet", *keys)
            grid = np.broadcast_arrays(*(np.asarray(k) for k in keys))
            want = np.vectorize(
                lambda *k: _splitmix_reference(seed, tuple(int(x) for x in k)))(*grid)
            assert got.shape == want.shape and np.array_equal(got, want), keys


def test_a_scan_ahead_leaves_the_servers_state_as_it_was() -> None:
    """The state a look-ahead scans with is a copy: its lists too."""
    from edgetwin.emulator.async_state import ServerState

    state = ServerState(version=3, staleness=[1, 2], owed=[5.0])
    ahead = state.copy()
    ahead.staleness.append(0)
    ahead.owed.pop()
    ahead.version += 1
    assert (state.version, state.staleness, state.owed) == (3, [1, 2], [5.0])
    assert dataclasses.asdict(state.copy()) == dataclasses.asdict(state)
    for f in dataclasses.fields(state):  # any field that can change in place is copied
        value = getattr(state, f.name)
        if isinstance(value, (list, dict, set)):
            assert getattr(state.copy(), f.name) is not value, f.name
