"""The compiled check-in (`emulator/checkin_kernel.py`, the `fast` extra) against the
numpy path it stands for: whole runs of the shipped thousand-client scenario, grown
until its draws are the kernel's, come out the same bit for bit either way."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgetwin.emulator import checkin
from edgetwin.emulator.engine import Engine
from edgetwin.emulator.scenario import load_scenario

pytest.importorskip("numba", reason="the compiled check-in needs the `fast` extra (numba)")
from edgetwin.emulator import checkin_kernel  # only with numba

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "thousand_clients.yaml"
# draws of 5,000 candidates a round (500 a round, pool factor 10): the kernel's
LARGE = ["fleet.clients=40000", "orchestration.clients_per_round=500", "stop.rounds=6"]
VARIANTS = {
    "churn and daily windows": [],
    "online without a charger too": ["availability.charging_only=false"],
    "no churn, a higher charge to join": ["availability.mean_session_s=null",
                                          "battery.min_pct_to_join=60"],
    "whole fleet each draw": ["fleet.clients=6000", "orchestration.clients_per_round=800"],
}


def _run(overrides: list[str], compiled: bool, monkeypatch: pytest.MonkeyPatch,
         wrap: Any = None) -> tuple[dict[str, np.ndarray], list[Any], int]:
    """One run's session columns and rounds, and how many draws the kernel made."""
    calls = [0]
    draw = checkin_kernel.eligible_draw

    def counted(*args: Any) -> Any:
        out = draw(*args)
        calls[0] += out is not None
        return out if wrap is None or out is None else wrap(out)

    with monkeypatch.context() as m:
        m.setattr(checkin, "KERNEL", compiled)
        m.setattr(checkin, "KERNEL_CANDIDATES", 0)  # these runs are small, to be quick
        m.setattr(checkin_kernel, "eligible_draw", counted)
        s = load_scenario(SCENARIO, LARGE + overrides)
        engine = Engine(s, SCENARIO.parent, s.seed)
        results = engine.run()
    return dict(engine.log.columns()), list(results.rounds), calls[0]


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_compiled_check_in_gives_numpys_runs(variant: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    compiled, rounds, calls = _run(VARIANTS[variant], True, monkeypatch)
    plain, plain_rounds, none = _run(VARIANTS[variant], False, monkeypatch)
    assert calls >= 6 and none == 0, "the kernel ran in one run and only there"
    assert len(plain["client"]) > 1_000
    assert _same(compiled, plain)
    assert rounds == plain_rounds


def test_marks_sorted_or_scanned_give_the_same_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Draws deduplicated by sorting them (fleets far larger than a draw) and by scanning
    the marks: the same candidates."""
    scanned = _run([], True, monkeypatch)[0]
    monkeypatch.setattr(checkin, "SCAN_PER_DRAW", 1)
    monkeypatch.setattr(checkin, "BITS_PER_DRAW", 1)
    sorted_, _, calls = _run([], True, monkeypatch)
    plain = _run([], False, monkeypatch)[0]
    assert calls >= 6
    assert _same(sorted_, scanned) and _same(sorted_, plain)


@pytest.mark.parametrize("n", [64, 130, 1_000])
def test_a_bit_a_client_and_a_sorted_draw_find_the_same_new_clients(n: int) -> None:
    """The kernel's two ways of dropping clients drawn before, on a fleet where everyone
    is eligible (so every new client comes back): the same clients, in client order,
    through a random draw and then the whole fleet (the first and last clients of a
    word of bits and a fleet whose last word is part full among them)."""
    every = np.zeros(n)
    found: dict[bool, list[np.ndarray]] = {}
    for scan in (True, False):
        marked = np.zeros(n, dtype=np.uint8)
        found[scan] = []
        for key, size in ((7 << 32, n // 2), (8 << 32, n)):  # at random, then everyone
            clients, _ = checkin_kernel._draw(
                key, size, n, np.uint64(12345), marked, scan, 1.0, every, every,
                np.full(n, 24.0), False, every, every, 0.0, every, np.uint64(99), 1.0, every,
                every, np.full(n, np.inf), every, every, np.zeros(n, dtype=np.int64),
                np.zeros(1), 0.0)
            found[scan].append(clients)
        assert (marked == 1).all()
    first, rest = found[True]
    assert 0 < len(first) < n and np.all(np.diff(first) > 0)
    assert np.array_equal(np.sort(np.concatenate([first, rest])), np.arange(n))
    assert all(np.array_equal(a, b) for a, b in zip(found[True], found[False], strict=True))


def test_a_kernel_that_lost_one_candidate_a_draw_is_told_apart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison is sharp: a kernel dropping its last eligible client per draw
    changes the run."""
    def lose_one(out: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return out[0][:-1], out[1][:-1]

    wrong = _run([], True, monkeypatch, wrap=lose_one)[0]
    assert not _same(wrong, _run([], False, monkeypatch)[0])


def test_the_kernels_uniforms_are_numpys_at_the_ends_too() -> None:
    """Hashes whose uniform rounds to 1 are taken below it by both paths (an online
    fraction of 1 then keeps the client online in both)."""
    from edgetwin.emulator.streams import unit_interval

    x = np.array([2 ** 64 - 1, 2 ** 64 - 2 ** 11, 2 ** 64 - 2 ** 12, 0, 2 ** 63 + 12_345],
                 dtype=np.uint64)
    kernel = [checkin_kernel._unit(v) for v in x]
    assert kernel == unit_interval(x.copy()).tolist() and max(kernel) < 1.0


def test_hours_out_of_the_exact_range_are_left_to_numpy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where local hours would leave the range `mod_24`'s formula is exact for, the
    kernel declines before marking anything, and the numpy path draws."""
    s = load_scenario(SCENARIO, LARGE)
    engine = Engine(s, SCENARIO.parent, s.seed)
    kf = checkin_kernel.fleet_of(engine)
    assert kf is not None
    marked = np.zeros(engine.fleet.n, dtype=np.uint8)
    assert checkin_kernel.eligible_draw(engine, kf, marked, True, 1 << 32, 5_000,
                                        2.0 ** 62) is None
    assert not marked.any()
    got = checkin_kernel.eligible_draw(engine, kf, marked, True, 1 << 32, 5_000, 3_600.0)
    assert got is not None and len(got[0]) > 0 and marked.sum() > len(got[0])


def test_ctrl_c_during_the_compiled_draw_is_a_keyboard_interrupt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """numba hands back an interrupt that arrived during the call as a SystemError
    caused by it; the run must see the interrupt (and keep what it simulated)."""
    s = load_scenario(SCENARIO, LARGE)
    engine = Engine(s, SCENARIO.parent, s.seed)
    kf = checkin_kernel.fleet_of(engine)
    assert kf is not None

    def interrupted(*args: Any) -> Any:
        try:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as e:
                raise SystemError("returned a result with an exception set") from e
        except SystemError as e:
            raise SystemError("_draw returned a result with an exception set") from e

    monkeypatch.setattr(checkin_kernel, "_draw", interrupted)
    marked = np.zeros(engine.fleet.n, dtype=np.uint8)
    with pytest.raises(KeyboardInterrupt):
        checkin_kernel.eligible_draw(engine, kf, marked, True, 1 << 32, 5_000, 3_600.0)
    monkeypatch.setattr(checkin_kernel, "_draw", lambda *a: (_ for _ in ()).throw(
        SystemError("not an interrupt")))
    with pytest.raises(SystemError):
        checkin_kernel.eligible_draw(engine, kf, marked, True, 1 << 32, 5_000, 3_600.0)


def test_a_numba_that_cannot_run_leaves_the_numpy_path_and_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """numba installed but unusable (too old for this numpy, say: its import fails): the
    run draws as numpy does, the same sessions, and its warnings name the reason."""
    plain = _run([], False, monkeypatch)[0]
    import edgetwin.emulator

    monkeypatch.delattr(edgetwin.emulator, "checkin_kernel")
    monkeypatch.setitem(sys.modules, "edgetwin.emulator.checkin_kernel", None)
    monkeypatch.setattr(checkin, "KERNEL", True)
    monkeypatch.setattr(checkin, "KERNEL_CANDIDATES", 0)
    s = load_scenario(SCENARIO, LARGE)
    engine = Engine(s, SCENARIO.parent, s.seed)
    results = engine.run()
    assert _same(dict(engine.log.columns()), plain)
    off = [w for w in results.warnings if "compiled check-in is off" in w]
    assert len(off) == 1 and "the results are the same" in off[0]
