"""`benchmarks/fleet_speed.py`'s goal lines: each says met or missed against the figure
it names, and a rate goal also gives the run's own rate, the build left out."""

from __future__ import annotations

from typing import Any

from .emulator_helpers import benchmark_script


def _measured(bench: Any, engine_s: list[float], build_s: float, sessions: int) -> Any:
    runs = [bench.Run(e, e + 0.5, 100.0, sessions, build_s) for e in engine_s]
    return bench.Measured(bench.median_run(runs), runs=runs)


def test_a_rate_goal_says_met_or_missed_and_the_runs_own_rate() -> None:
    bench = benchmark_script("fleet_speed")
    m = {"sync-100k": _measured(bench, [1.0, 1.3, 1.2], 0.2, 120_000)}
    goal, alone = bench.rate_at_least("sync-100k", 110_000)(m)
    # the median engine time, 1.2 s: 100,000 a second, missed by 0.91x
    assert "100,000.00 against >= 110,000.00: missed (0.91x the goal)" in goal
    # the run alone, 1.0 s: 120,000 a second, met, and said to be the run's own
    assert "run alone" in alone and "120,000.00 against >= 110,000.00: met (1.09x" in alone
    # a build that is counted where it is not (build_s left at 0) changes the second line
    runs = [bench.Run(e, e + 0.5, 100.0, 120_000) for e in (1.0, 1.3, 1.2)]
    wrong = {"sync-100k": bench.Measured(bench.median_run(runs), runs=runs)}
    assert "missed" in bench.rate_at_least("sync-100k", 110_000)(wrong)[1]


def test_a_ratio_goal_gives_its_repeats_range_and_where_the_goal_lies() -> None:
    bench = benchmark_script("fleet_speed")
    line = bench.ratio_verdict("idle / sync engine", [1.21, 1.44, 1.14, 1.33, 1.51], 1.3,
                               at_most=True)
    assert "1.33 against <= 1.30: missed" in line and "repeats 1.14-1.51, the goal inside" in line
    clear = bench.ratio_verdict("idle / sync engine", [1.1, 1.2, 1.15], 1.3, at_most=True)
    assert "1.15 against <= 1.30: met" in clear and "inside" not in clear
