"""The buffered asynchronous server's parts: a batch of launches selected at once
(`async_launches.select_batch`) is what the launches chosen one after another give,
each with the clients the earlier ones invited held busy; its stopping rules; and what
`benchmarks/async_steps.py` counts of its steps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgetwin.emulator import async_launches, async_rounds
from edgetwin.emulator.async_launches import select_batch, tell_observer
from edgetwin.emulator.async_state import Launch
from edgetwin.emulator.checkin import candidates, choose
from edgetwin.emulator.engine import Engine
from edgetwin.emulator.observer import Observer
from edgetwin.emulator.session import CANCELLED

from .emulator_helpers import SCENARIOS, benchmark_script, build, small_scenario


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
    # no under-claim past what the passes guarantee: each settles one more launch
    assert all(certain > passes for passes, certain in enumerate(settled))


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


def test_the_step_benchmark_counts_each_session_kept_once() -> None:
    """`benchmarks/async_steps.py` counts what the server kept: every session it kept is
    in the run's log (those planned in vain are not), every phase is timed within the
    steps, the counts repeat with the seed, and the server's own parts are back after."""
    from edgetwin.emulator.async_rounds import AsyncRounds
    from edgetwin.emulator.session import SessionModel

    bench = benchmark_script("async_steps")
    parts = [(AsyncRounds, "step"), (AsyncRounds, "scan"), (AsyncRounds, "_launch"),
             (async_rounds, "select_batch"), (async_launches, "choose"),
             (SessionModel, "plan"), (SessionModel, "account")]
    own = [getattr(owner, name) for owner, name in parts]
    overrides = [o for o in bench.ASYNC_1K if not o.startswith("stop.")] + ["stop.rounds=60"]
    t = bench.measure(overrides)
    assert t.steps > 10 and t.kept == t.recorded > 0 and t.planned >= t.kept
    assert sum(t.ended.values()) == t.launch_steps <= t.steps
    assert t.launches >= t.launches_kept >= t.launch_steps and t.choices >= t.launch_steps
    assert all(t.seconds[p] > 0 for p in bench.PHASES)
    assert sum(t.seconds[p] for p in bench.PHASES) <= t.seconds["step"] <= t.run_s
    assert bench.measure(overrides).counts() == t.counts()
    lines = bench.report("async-1k", [t])
    assert f"{t.recorded:,} sessions" in lines[1] and f"{t.steps:,} steps" in lines[2]
    assert [getattr(owner, name) for owner, name in parts] == own


def test_the_step_benchmark_tells_why_a_step_ended() -> None:
    """The reason a step kept fewer launches than it made, as `_launch` decides it: a
    new session's report before the next launch, a launch short of clients (counted
    from the sessions kept), or the first launch the selection did not settle."""
    bench = benchmark_script("async_steps")
    made = [Launch(at_s=float(i), count=2, version=0) for i in range(4)]

    def kept(per_launch: list[int]) -> tuple[None, np.ndarray]:
        return None, np.repeat(np.arange(len(per_launch)), per_launch)

    assert bench.ended_by(made, kept([2, 2, 2, 1]), 4, 4) == "held"
    assert bench.ended_by(made, kept([2, 1]), 2, 4) == "short"
    assert bench.ended_by(made, kept([2, 2]), 2, 4) == "report"
    assert bench.ended_by(made, kept([2, 2]), 2, 2) == "unsettled"
    assert bench.ended_by(made, None, 0, 0) == "unsettled"
