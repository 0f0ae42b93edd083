"""Where an asynchronous run's time goes, look-ahead step by look-ahead step.

The buffered asynchronous server (`emulator/async_rounds.py`) advances in steps: it
scans the next reports, selects and plans the launches they owe as one batch, and keeps
the launches that hold (up to the first that a new session's report comes before, or
one short of clients or not settled). A run's time is its steps times the cost of one;
this script measures both, for the two asynchronous cases of `fleet_speed.py`:

- the steps, and per step: sessions kept, sessions planned (those of launches beyond
  what holds are planned in vain), launches selected and kept, and calls of the
  selection policy;
- what ended each step that launched: every launch held; a new session reported before
  a launch; a launch short of clients; a launch not settled by the selection's passes;
- a step's time and its shares: the scan (twice a step), selection, planning, the
  sessions' accounts, and the rest (taking, starting and recording sessions); and the
  time outside the steps (the events' loop, the stop).

The run's time is the events' only (the fleet is built before it), each phase timed by
a wrapper (about a microsecond a call): compare its figures with each other, not with
`fleet_speed.py`'s engine time, which counts the build too. A first run, not counted,
warms imports and caches. The counts repeat with the seed (each repeat checks it; on
another class of processor they may differ, as the goldens' hashes do); the times are
medians.

Usage: python benchmarks/async_steps.py [--repeats N] [--only SUBSTRING] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgetwin.common.errors import InputError
from edgetwin.emulator import async_launches, async_rounds
from edgetwin.emulator.async_rounds import AsyncRounds
from edgetwin.emulator.engine import Engine
from edgetwin.emulator.scenario import load_scenario
from edgetwin.emulator.session import SessionModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_speed import ASYNC_1K, ASYNC_100K, SCENARIO

CASES = {"async-1k": ("thousand_clients.yaml, async, 2,000 aggregations", ASYNC_1K),
         "async-100k": ("100k clients, async, 1,000 in flight, 300 aggregations", ASYNC_100K)}
PHASES = {"scan": "scan", "select": "selection", "plan": "planning", "account": "accounts"}
TIMED = ("step", *PHASES, "launch", "choose")
ENDED = {"held": "every launch held", "report": "a new session reported first",
         "short": "a launch short of clients", "unsettled": "a launch not settled"}


@dataclass
class Tally:
    """One run's steps: counts, and seconds by phase."""

    steps: int = 0
    launch_steps: int = 0  # steps that made launches
    launches: int = 0  # selected, those beyond what holds among them
    launches_kept: int = 0
    planned: int = 0
    kept: int = 0
    choices: int = 0  # selection-policy calls
    ended: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMED, 0.0))
    run_s: float = 0.0
    recorded: int = 0  # sessions in the run's log

    def counts(self) -> tuple[Any, ...]:
        return (self.steps, self.launch_steps, self.launches, self.launches_kept,
                self.planned, self.kept, self.choices, tuple(sorted(self.ended.items())),
                self.recorded)


@contextmanager
def instrumented(t: Tally) -> Iterator[None]:
    """The server's phases timed and counted into `t` while inside (inside a step only:
    the stop accounts the sessions still running too); the server's own parts again
    afterwards, whatever happens."""
    saved: list[tuple[Any, str, Any]] = []
    inside = [False]  # within a step
    certain = [0]  # launches the last batch's selection settled

    def wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, make(original))

    def timed(phase: str, count: Callable[[Any, Any], None] | None = None
              ) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                if phase != "step" and not inside[0]:
                    return original(*args, **kwargs)
                inside[0] = True
                t0 = time.perf_counter()
                try:
                    out = original(*args, **kwargs)
                finally:
                    t.seconds[phase] += time.perf_counter() - t0
                    if phase == "step":
                        inside[0] = False
                if count is not None:
                    count(args, out)
                return out
            return call
        return make

    def step(args: Any, out: Any) -> None:
        t.steps += 1

    def select(args: Any, out: Any) -> None:
        certain[0] = out[2]

    def plan(args: Any, out: Any) -> None:
        t.planned += len(args[1])

    def choose(args: Any, out: Any) -> None:
        t.choices += 1

    def launch(args: Any, out: Any) -> None:
        made, (new, valid, _) = args[1], out
        if not made:
            return
        t.launch_steps += 1
        t.launches += len(made)
        t.launches_kept += valid
        t.kept += 0 if new is None else len(new[1])
        t.ended[ended_by(made, new, valid, certain[0])] += 1

    try:
        wrap(AsyncRounds, "step", timed("step", step))
        wrap(AsyncRounds, "scan", timed("scan"))
        wrap(AsyncRounds, "_launch", timed("launch", launch))
        wrap(async_rounds, "select_batch", timed("select", select))
        wrap(async_launches, "choose", timed("choose", choose))
        wrap(SessionModel, "plan", timed("plan", plan))
        wrap(SessionModel, "account", timed("account"))
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def ended_by(made: list[Any], new: Any, valid: int, certain: int) -> str:
    """Why `AsyncRounds._launch` kept `valid` of the launches `made` (the batch's
    selection settled `certain`): it keeps them in order up to the first a new session
    reports before, and stops after one short of clients or at the first not settled."""
    if valid == len(made):
        return "held"
    got = np.bincount(new[1], minlength=valid) if new is not None else np.zeros(valid)
    if valid and got[valid - 1] < made[valid - 1].count:
        return "short"
    return "unsettled" if valid == certain else "report"


def measure(overrides: list[str]) -> Tally:
    """One instrumented run of the thousand-client scenario with `overrides`."""
    s = load_scenario(SCENARIO, overrides)
    if s.seed is None:
        raise ValueError("the scenario needs a seed: the counts repeat only with one")
    engine = Engine(s, SCENARIO.parent, s.seed)
    t = Tally()
    with instrumented(t):
        t0 = time.perf_counter()
        results = engine.run()
        t.run_s = time.perf_counter() - t0
    t.recorded = len(next(iter(results.sessions.values()), ()))
    return t


def report(label: str, runs: list[Tally]) -> list[str]:
    """The lines of one case: its counts (one run's: they are the same in each) and the
    median of each time."""
    t = runs[-1]

    def median(phase: str) -> float:
        return statistics.median(r.seconds[phase] for r in runs)

    run_s = statistics.median(r.run_s for r in runs)
    step_s = median("step")
    phases = {name: median(key) for key, name in PHASES.items()}
    phases["the rest"] = step_s - sum(phases.values())
    per = max(t.steps, 1)
    ms = step_s / per * 1e3
    ended = "; ".join(f"{text} {t.ended[key]:,} ({t.ended[key] / max(t.launch_steps, 1):.0%})"
                      for key, text in ENDED.items())
    shares = ", ".join(f"{name} {s / per * 1e3:.2f} ms ({s / step_s:.0%})"
                       for name, s in phases.items())
    return [
        label,
        f"  run {run_s:.2f} s (median of {len(runs)}: "
        f"{', '.join(f'{r.run_s:.2f}' for r in runs)}); {t.recorded:,} sessions, "
        f"{t.recorded / run_s:,.0f} a second",
        f"  {t.steps:,} steps: per step {t.kept / per:.1f} sessions kept, "
        f"{t.planned / per:.1f} planned ({1 - t.kept / max(t.planned, 1):.0%} of them in vain), "
        f"{t.launches / per:.1f} launches selected ({t.launches_kept / per:.1f} kept), "
        f"{t.choices / per:.2f} policy calls",
        f"  what ended a step that launched ({t.launch_steps:,}): {ended}",
        f"  a step {ms:.2f} ms: {shares}",
        f"  outside the steps: {run_s - step_s:.2f} s",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="run the cases whose key or label has this")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a scenario override added to each case's (repeatable)")
    args = ap.parse_args()
    chosen = {k: v for k, v in CASES.items() if args.only in k or args.only in v[0]}
    if not chosen:
        print(f"async_steps: --only {args.only!r} names no case (cases: "
              f"{', '.join(CASES)})", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print("async_steps: --repeats must be at least 1", file=sys.stderr)
        return 2
    for key, (label, overrides) in chosen.items():
        case = overrides + args.set
        try:
            measure(case)  # imports and caches warmed, not counted
            runs = [measure(case) for _ in range(args.repeats)]
        except (InputError, ValueError) as e:
            print(f"async_steps: {key}: {e}", file=sys.stderr)
            return 2
        if not runs[0].steps:
            print(f"async_steps: {key}: no asynchronous step ran (orchestration.mode is "
                  "not async?)", file=sys.stderr)
            return 2
        if len({r.counts() for r in runs}) != 1:
            print(f"async_steps: {key}: the counts differ between repeats of one seed",
                  file=sys.stderr)
            return 1
        print("\n".join(report(f"{key}: {label}", runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
