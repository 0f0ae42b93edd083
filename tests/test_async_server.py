"""The buffered asynchronous server's parts: a batch of launches selected at once
(`async_launches.select_batch`) is what the launches chosen one after another give,
each with the clients the earlier ones invited held busy; and its stopping rules."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from edgetwin.emulator import async_launches
from edgetwin.emulator.async_launches import select_batch, tell_observer
from edgetwin.emulator.checkin import candidates, choose
from edgetwin.emulator.engine import Engine
from edgetwin.emulator.observer import Observer
from edgetwin.emulator.session import CANCELLED

from .emulator_helpers import SCENARIOS, build, small_scenario


def _engine(clients: int, policy: str) -> Engine:
    data = small_scenario(fleet__clients=clients)
    data["orchestration"].update(mode="async")
    data["selection"] = {"policy": policy, "pool_factor": 4}
    return Engine(build(data), SCENARIOS, 5)


def _batch(launches: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    at = np.cumsum(np.random.default_rng(2).uniform(1.0, 60.0, launches))
    count = np.random.default_rng(3).integers(1, 4, launches)
    return at, count, 100 + np.arange(launches)


def _one_by_one(engine: Engine, at: np.ndarray, count: np.ndarray, ids: np.ndarray
                ) -> list[list[int]]:
    """Each launch chosen alone, the clients of those before it held from their instants."""
    cands = candidates(engine, at, count, ids)[1]
    chosen: list[list[int]] = []
    held_c: list[int] = []
    held_at: list[float] = []
    for j in range(len(at)):
        order = np.lexsort((held_at, held_c))
        held = np.array(held_c, dtype=np.int64)[order], np.array(held_at)[order]
        sel = choose(engine, cands.only(np.array([j])), held)
        chosen.append(sel.clients.tolist())
        held_c += sel.clients.tolist()
        held_at += [float(at[j])] * len(sel.clients)
    return chosen


@pytest.mark.parametrize("policy", ["deadline_aware", "random", "oort", "power_of_choice",
                                    "battery_aware"])
def test_a_batch_of_launches_chooses_as_one_launch_after_another(policy: str) -> None:
    engine = _engine(60, policy)  # a small fleet: launches of a batch compete for clients
    at, count, ids = _batch(25)
    clients, launch, certain, passes = select_batch(engine, at, count, ids)
    assert certain == len(at) and len(passes) > 1  # it had to choose again, and settled
    assert np.all(np.diff(launch) >= 0)  # launch by launch
    got = [clients[launch == j].tolist() for j in range(len(at))]
    assert got == _one_by_one(engine, at, count, ids)


def test_a_batch_that_does_not_settle_says_how_many_launches_are_certain(
        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(60, "deadline_aware")
    at, count, ids = _batch(25)
    want = _one_by_one(engine, at, count, ids)
    settled = []
    for passes in range(3):  # the first pass, then one or two more
        monkeypatch.setattr(async_launches, "RESELECTIONS", passes)
        clients, launch, certain, _ = select_batch(engine, at, count, ids)
        got = [clients[launch == j].tolist() for j in range(len(at))]
        assert got[:certain] == want[:certain]
        settled.append(certain)
    assert settled[0] < settled[1] <= settled[2] < len(at)


def test_the_observer_hears_each_launch_once_as_finally_chosen() -> None:
    engine = _engine(60, "deadline_aware")
    at, count, ids = _batch(25)
    clients, launch, _, passes = select_batch(engine, at, count, ids)
    heard: dict[int, list[int]] = {}

    class Listening(Observer):
        selections = True

        def selected(self, ctx: Any, pool: Any, places: Any, rounds: Any,
                     counted: Any = None) -> None:
            for j in np.flatnonzero(counted).tolist():
                assert int(rounds[j]) not in heard, "a launch heard twice"
                heard[int(rounds[j])] = pool.clients[places[pool.launch[places] == j]].tolist()

    engine.observer = Listening()
    valid = 20
    tell_observer(engine, passes, valid, list(range(len(at))))  # versions: the launch itself
    assert heard == {j: clients[launch == j].tolist() for j in range(valid)}


@pytest.mark.parametrize(("stop", "reason"), [
    ({"rounds": 7}, "rounds"), ({"energy_j": 30_000.0}, "energy"),
    ({"traffic_bytes": 2e8}, "traffic"),
    ({"rounds": 50, "virtual_time_s": 60.0, "deadline": 1.0}, "no progress")])
def test_the_asynchronous_server_stops_by_each_rule(stop: dict[str, float], reason: str) -> None:
    data = small_scenario(fleet__clients=60)
    data["orchestration"].update(mode="async", deadline_s=stop.pop("deadline", 600.0))
    data["stop"] = stop
    r = Engine(build(data), SCENARIOS, 5).run()
    assert r.stop_reason.startswith(reason)
    taken = r.sessions["status"] != CANCELLED  # each session the server took or saw end
    energy_j = r.sessions["energy_j"][taken].sum()
    traffic = (r.sessions["upload_bytes"][taken] + r.sessions["download_bytes"][taken]).sum()
    if reason == "rounds":
        assert len(r.rounds) == 7
    elif reason == "energy":
        assert energy_j >= 30_000.0
    elif reason == "traffic":
        assert traffic >= 2e8
    else:  # every session cut at its deadline: none completes, none is aggregated
        assert len(r.rounds) == 0 and taken.sum() > 0


def _benchmark(name: str) -> Any:
    """A script of `benchmarks/`, imported from its file."""
    import importlib.util

    path = SCENARIOS.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def test_the_step_benchmark_counts_each_session_kept_once() -> None:
    """`benchmarks/async_steps.py` counts what the server kept: every session it kept is
    in the run's log once (those planned in vain are not), each step that launched ended
    for one reason, the phases fit in the steps, and the counts repeat with the seed."""
    bench = _benchmark("async_steps")
    overrides = [*bench.ASYNC_1K[:-1], "stop.rounds=60"]
    t = bench.measure(overrides)
    assert t.steps > 10 and t.kept == t.recorded > 0 and t.planned >= t.kept
    assert sum(t.ended.values()) == t.launch_steps <= t.steps
    assert t.choices >= t.launch_steps and t.launches >= t.launch_steps
    phases = sum(t.seconds[p] for p in bench.PHASES)
    assert 0 < phases <= t.seconds["step"] <= t.run_s
    assert bench.measure(overrides).counts() == t.counts()
    lines = bench.report("async-1k", [t])
    assert f"{t.recorded:,} sessions" in lines[1] and f"{t.steps:,} steps" in lines[2]
    assert async_launches.choose is choose  # the server's own parts again afterwards
