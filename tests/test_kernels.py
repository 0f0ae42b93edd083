"""The compiled loops (numba) give the bytes the numpy paths give: the keyed uniforms
for every mix of keys, and whole runs whose check-ins go through the compiled draws and
filter, compared session for session with the same runs on the numpy paths."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgetwin.common import compiled
from edgetwin.emulator import checkin
from edgetwin.emulator.engine import Engine, Results
from edgetwin.emulator.scenario import load_scenario
from edgetwin.emulator.streams import STREAMS, Streams

from .emulator_helpers import SCENARIOS

pytest.importorskip("numba", reason="numba is not installed (pip install edgetwin[fast]): "
                    "only the numpy paths run here")

KEYS = hnp.arrays(np.int64, st.integers(0, 40), elements=st.integers(-2 ** 63, 2 ** 63 - 1))


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).view(np.uint64).tobytes() + repr(a.shape).encode()


@settings(max_examples=60, deadline=None)
@given(stream=st.sampled_from(STREAMS), scalar=st.integers(-2 ** 63, 2 ** 63 - 1),
       a=KEYS, b=KEYS)
def test_keyed_uniforms_are_the_same_compiled(stream: str, scalar: int, a: np.ndarray,
                                              b: np.ndarray) -> None:
    s = Streams(11)
    m = min(len(a), len(b))
    cases: list[tuple[Any, ...]] = [(a,), (scalar, a), (a, b[:m] if m == len(a) else a),
                                     (scalar, a[:, None], b[None, :]),
                                     (a, np.int64(scalar)), (a.astype(np.int32),)]
    on = [s.uniform(stream, *keys) for keys in cases]
    with compiled.turned_off():
        off = [s.uniform(stream, *keys) for keys in cases]
    for keys, x, y in zip(cases, on, off, strict=True):
        assert _bits(x) == _bits(y), keys


def _digest(r: Results) -> str:
    h = hashlib.sha256()
    for name in sorted(r.sessions):
        h.update(name.encode() + np.ascontiguousarray(r.sessions[name]).tobytes())
    for row in r.rounds:
        h.update(repr(row).encode())
    h.update(repr((r.virtual_time_s, r.stop_reason, r.energy_j_after_last_round)).encode())
    return h.hexdigest()


# the shipped thousand-client fleet: daily windows in seven time zones, churn, batteries
# with a floor to join, phones on chargers part of the day and boards on mains
RUNS: dict[str, list[str]] = {
    "sync": ["fleet.clients=20000", "orchestration.clients_per_round=200", "stop.rounds=30"],
    "sync, charging only, hot": ["availability.charging_only=true", "thermal.hot=true",
                                 "stop.rounds=40"],
    "async": ["orchestration.mode=async", "fleet.clients=5000", "stop.rounds=150"],
}


def _counted(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    calls: list[int] = []
    fn: Callable[..., Any] = getattr(checkin, name)

    def counting(*args: Any) -> Any:
        calls.append(1)
        return fn(*args)

    monkeypatch.setattr(checkin, name, counting)
    return calls


@pytest.mark.parametrize("case", RUNS)
def test_a_run_through_the_compiled_check_in_is_the_numpy_run(
        case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = SCENARIOS / "thousand_clients.yaml"
    s = load_scenario(path, RUNS[case])
    with compiled.turned_off():
        numpy_run = Engine(s, path.parent, s.seed).run()
    drawn, filtered = _counted(monkeypatch, "_drawn_compiled"), \
        _counted(monkeypatch, "_eligible_compiled")
    compiled_run = Engine(s, path.parent, s.seed).run()
    assert filtered and (drawn or case == "async")  # the compiled paths were taken
    assert len(compiled_run.sessions["client"]) >= 1_000
    assert _digest(compiled_run) == _digest(numpy_run)


def test_draws_read_in_client_order_or_in_draw_order_give_one_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = SCENARIOS / "thousand_clients.yaml"
    s = load_scenario(path, ["fleet.clients=50000", "orchestration.clients_per_round=100",
                             "stop.rounds=20"])
    assert 1_300 * checkin.DENSE_DRAWS >= 50_000  # 1,300 draws a round: read in client order
    in_order = Engine(s, path.parent, s.seed).run()
    monkeypatch.setattr(checkin, "DENSE_DRAWS", 0)  # now in the order drawn
    assert _digest(Engine(s, path.parent, s.seed).run()) == _digest(in_order)


def test_the_compiled_filter_is_the_numpy_filter_client_by_client() -> None:
    """Every client of a fleet part-way through a run (charges, temperatures and busy
    times written), asked at instants over two days: idle, online and charged enough
    alike, and the same charge to the bit, for a floor to join of 30 % and of 90 %."""
    path = SCENARIOS / "thousand_clients.yaml"
    for floor in (30, 90):
        s = load_scenario(path, ["stop.rounds=30", f"battery.min_pct_to_join={floor}",
                                 "availability.charging_only=true"])
        engine = Engine(s, path.parent, s.seed)
        engine.run()
        model, c = engine.model, np.arange(engine.fleet.n)
        t0 = float(engine.env.now)
        checked = 0
        for t_s in t0 + np.linspace(-3_600.0, 2 * 86_400.0, 25):
            t = np.full(len(c), t_s)
            ok, battery = checkin._eligible_compiled(engine, c, t)
            idle = engine.busy_until_s[c] <= t
            online = np.zeros(len(c), dtype=bool)
            online[idle] = model.availability.online(c[idle], t[idle])
            expect = np.zeros(len(c), dtype=bool)
            on = np.flatnonzero(online)
            charge = model.battery_at(c[on], t[on])
            expect[on] = model.charged_enough(c[on], charge)
            assert np.array_equal(ok, expect)
            assert _bits(battery[on]) == _bits(charge)
            checked += len(on)
        assert checked >= 2_000
