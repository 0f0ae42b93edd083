"""Emulator speed and memory: each case a fresh `edgetwin simulate`, medians of repeats.

Per case: the engine's time (from the scenario loaded to the results in memory: the
fleet's build and the events, as run.json records it; no interpreter start, no files,
no plots), of it the build (where the lazily imported scipy.special falls), end to end
(the whole command), client sessions per engine second, and the command's peak memory.
Each case's goal is checked and said met or missed, and by how much (a rate goal also
with the run's own rate, the build left out: for what it is worth, not the goal's
measure); goals that are ratios compare cases measured in the same run. Each repeat
runs every case once, in turn, so that the cases a ratio compares see the same stretch
of a shared machine's time: a ratio's figure is the median of its repeats' own ratios,
shown with their range (a goal inside it is one the machine's noise can decide).

`--baseline DIR` measures an earlier edgetwin beside this one, case by case and
alternating, so that both see the same machine: DIR holds that version installed
(`pip install --no-deps --target DIR <its checkout>`), and the table gains its
figures and the speed-up.

The 100-million-client case runs where 4 GiB (its goal) are free; its baseline is not
measured (that engine held every client: about 21 GB).

Usage: python benchmarks/fleet_speed.py [--repeats N] [--only SUBSTRING] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "thousand_clients.yaml"
SYNC_100K = ["fleet.clients=100000", "orchestration.clients_per_round=1000"]
ASYNC_1K = ["orchestration.mode=async", "stop.rounds=2000"]
ASYNC_100K = ["orchestration.mode=async", "fleet.clients=100000",
              "orchestration.async={concurrency: 1000, buffer_size: 100}", "stop.rounds=300"]
MILLION = ["fleet.clients=1000000", "orchestration.clients_per_round=10000"]
IDLE = ["fleet.clients=1000000", "orchestration.clients_per_round=1000"]
TEN_MILLION = ["fleet.clients=10000000", "orchestration.clients_per_round=10000",
               "stop.rounds=10"]
HUNDRED_MILLION = ["fleet.clients=100000000", "orchestration.clients_per_round=10000",
                   "stop.rounds=10"]
GIB = 1024.0
HUGE_NEEDS_GIB = 4.0  # free memory the 100M case is run with


@dataclass(frozen=True)
class Run:
    engine_s: float
    wall_s: float
    peak_mib: float
    sessions: int
    build_s: float = 0.0  # the fleet's build, within engine_s (scipy's import falls there)

    @property
    def rate(self) -> float:
        """Client sessions per engine second."""
        return self.sessions / self.engine_s

    @property
    def run_rate(self) -> float:
        """Client sessions per second of the run alone (the engine less the build)."""
        return self.sessions / (self.engine_s - self.build_s)


@dataclass
class Measured:
    """A case's medians, now and (with --baseline) before."""

    now: Run
    before: Run | None = None
    runs: list[Run] = field(default_factory=list)  # each repeat's, now
    runs_before: list[Run] = field(default_factory=list)  # and before, in the same repeats


def paired(m: dict[str, Measured], key: str, of: str, value: Callable[[Run, Run], float]
           ) -> list[float]:
    """`value(key's run, of's run)` of each repeat: each pair measured in the same one."""
    return [value(a, b) for a, b in zip(m[key].runs, m[of].runs, strict=True)]


def ratio_verdict(name: str, repeats: list[float], goal: float, *, at_most: bool) -> str:
    """A ratio goal's line: the median of its repeats' own ratios, their range, and
    whether the goal lies inside it (where it does, the machine's noise can decide)."""
    low, high = min(repeats), max(repeats)
    inside = ", the goal inside it" if low <= goal <= high else ""
    return verdict(name, statistics.median(repeats), goal, at_most=at_most) + \
        f"; repeats {low:,.2f}-{high:,.2f}{inside}"


Goal = Callable[[dict[str, Measured]], list[str]]  # lines: each goal, met or missed


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    overrides: list[str]
    plots: bool = False
    goals: list[Goal] = field(default_factory=list)
    huge: bool = False  # run only where HUGE_NEEDS_GIB are free; no baseline


def verdict(name: str, value: float, goal: float, *, at_most: bool, unit: str = "") -> str:
    """One goal's line: the value, the goal, met or missed and by how much."""
    met = value <= goal if at_most else value >= goal
    by = goal / value if at_most else value / goal
    word = "met" if met else "missed"
    return f"  {name}: {value:,.2f}{unit} against {'<=' if at_most else '>='} " \
           f"{goal:,.2f}{unit}: {word} ({by:.2f}x the goal)"


def rate_at_least(key: str, goal: float) -> Goal:
    """The goal, and (for what it is worth, not the goal's measure) the run's own rate."""
    return lambda m: [verdict(f"{key} sessions/s", m[key].now.rate, goal, at_most=False),
                      verdict(f"  (the run alone, without the build: {key} sessions/s",
                              m[key].now.run_rate, goal, at_most=False) + ")"]


def share_of(key: str, of: str, share: float) -> Goal:
    def check(m: dict[str, Measured]) -> list[str]:
        if of not in m:
            return [f"  {key} against {of}: not measured ({of} not run)"]
        return [ratio_verdict(f"{key} rate / {of} rate",
                              paired(m, key, of, lambda a, b: a.rate / b.rate), share,
                              at_most=False)]
    return check


def peak_at_most(key: str, gib: float) -> Goal:
    return lambda m: [verdict(f"{key} peak GiB", m[key].now.peak_mib / GIB, gib,
                              at_most=True)]


def wall_at_most(key: str, seconds: float) -> Goal:
    return lambda m: [verdict(f"{key} end to end s", m[key].now.wall_s, seconds,
                              at_most=True)]


def faster_than_before(key: str, share: float) -> Goal:
    def check(m: dict[str, Measured]) -> list[str]:
        if m[key].before is None:
            return [f"  {key} end to end against before: needs --baseline"]
        # each repeat's own: its run before and its run now follow each other
        ratios = [now.wall_s / before.wall_s
                  for now, before in zip(m[key].runs, m[key].runs_before, strict=True)]
        return [ratio_verdict(f"{key} end to end now / before", ratios, share, at_most=True)]
    return check


def tenfold(key: str, of: str, most: float) -> Goal:
    def check(m: dict[str, Measured]) -> list[str]:
        if of not in m:
            return [f"  {key} against {of}: not measured ({of} not run)"]
        engine = paired(m, key, of, lambda a, b: a.engine_s / b.engine_s)
        wall = paired(m, key, of, lambda a, b: a.wall_s / b.wall_s)
        return [ratio_verdict(f"{key} / {of} engine", engine, most, at_most=True),
                ratio_verdict(f"{key} / {of} end to end", wall, most, at_most=True)]
    return check


CASES = [
    Case("plots", "thousand_clients.yaml, plots", [], plots=True,
         goals=[wall_at_most("plots", 10.0)]),
    Case("sync-100k", "100k clients x 1,000 a round x 100, sync", SYNC_100K,
         goals=[rate_at_least("sync-100k", 400_000)]),
    Case("idle", "1M clients x 1,000 a round x 100 (idle)", IDLE,  # just after its pair
         goals=[tenfold("idle", "sync-100k", 1.3)]),
    Case("async-1k", "thousand_clients.yaml, async, 2,000 aggregations", ASYNC_1K,
         goals=[rate_at_least("async-1k", 50_000), share_of("async-1k", "sync-100k", 0.25)]),
    Case("async-100k", "100k clients, async, 1,000 in flight, 300 aggregations", ASYNC_100K,
         goals=[rate_at_least("async-100k", 100_000)]),
    Case("million", "1M clients x 10,000 a round x 100", MILLION,
         goals=[faster_than_before("million", 0.5), peak_at_most("million", 1.0)]),
    Case("10M", "10M clients x 10,000 a round x 10", TEN_MILLION),
    Case("100M", "100M clients x 10,000 a round x 10", HUNDRED_MILLION, huge=True,
         goals=[peak_at_most("100M", 4.0), wall_at_most("100M", 30.0)]),
]


def run_case(case: Case, baseline: str | None) -> Run:
    """One `edgetwin simulate` in a fresh process: this edgetwin, or the one installed
    in `baseline` (run from outside the checkout, so that it imports that one)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "edgetwin.cli", "simulate", str(SCENARIO), "--out",
               str(Path(out) / "run"), "--quiet"]
        for o in case.overrides:
            cmd += ["--set", o]
        if not case.plots:
            cmd.append("--no-plots")
        env = dict(os.environ)
        if baseline:
            env["PYTHONPATH"] = baseline
            _check_imports(baseline, out, env)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=out if baseline else ROOT, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        # ru_maxrss of children is the largest child so far: each case runs in a
        # fresh benchmark process (see measure), so this is this case's
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        folder = Path(out) / "run"
        info = json.loads((folder / "run.json").read_text())
        sessions = json.loads((folder / "summary.json").read_text())["client_sessions"]
    return Run(float(info["engine_s"]), wall, peak, int(sessions), float(info["build_s"]))


def _check_imports(baseline: str, cwd: str, env: dict[str, str]) -> None:
    """Stop unless a process started as the case's imports the edgetwin in `baseline`
    (a relative folder, run from elsewhere, would silently measure this one)."""
    found = subprocess.run([sys.executable, "-c", "import edgetwin; print(edgetwin.__file__)"],
                           check=True, capture_output=True, text=True, cwd=cwd, env=env)
    if not Path(found.stdout.strip()).is_relative_to(Path(baseline)):
        raise SystemExit(f"fleet_speed: the baseline run imported {found.stdout.strip()}, "
                         f"not the edgetwin in {baseline}")


def measure_once(case: Case, baseline: str | None) -> Run:
    """One run of a case from a fresh benchmark process (so that the peak memory read
    is this case's alone)."""
    cmd = [sys.executable, __file__, "--one", case.key]
    if baseline:
        cmd += ["--baseline", baseline]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return Run(**json.loads(done.stdout))


def median_run(runs: list[Run]) -> Run:
    return Run(statistics.median(r.engine_s for r in runs),
               statistics.median(r.wall_s for r in runs), max(r.peak_mib for r in runs),
               runs[0].sessions, statistics.median(r.build_s for r in runs))


def available_mib() -> float:
    """Memory this machine has free for a run, MiB (MemAvailable)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def row(label: str, r: Run) -> str:
    return (f"{label:58} {r.engine_s:9.2f} {r.build_s:8.2f} {r.wall_s:7.2f} "
            f"{r.sessions:10,} {r.rate:11,.0f} {r.peak_mib:9,.0f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="run the cases whose key or label has this")
    ap.add_argument("--baseline", default=None,
                    help="a folder holding an earlier edgetwin, measured beside this one")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:  # the cases run from elsewhere: a relative folder would not resolve
        args.baseline = str(Path(args.baseline).resolve())
    if args.one is not None:
        r = run_case(next(c for c in CASES if c.key == args.one), args.baseline)
        print(json.dumps(r.__dict__))
        return 0
    if args.baseline and not (Path(args.baseline) / "edgetwin" / "__init__.py").is_file():
        print(f"fleet_speed: --baseline {args.baseline}: no edgetwin installed there (pip "
              "install --no-deps --target DIR <an edgetwin checkout>)", file=sys.stderr)
        return 2
    if not any(args.only in c.key or args.only in c.label for c in CASES):
        print(f"fleet_speed: --only {args.only!r} names no case (cases: "
              f"{', '.join(c.key for c in CASES)})", file=sys.stderr)
        return 2
    selected = []
    for case in CASES:
        if args.only not in case.key and args.only not in case.label:
            continue
        if case.huge and available_mib() < HUGE_NEEDS_GIB * GIB:
            print(f"{case.label}: not run: it may take {HUGE_NEEDS_GIB:g} GiB; "
                  f"{available_mib() / GIB:,.1f} GiB are free")
            continue
        selected.append(case)
    now_runs: dict[str, list[Run]] = {c.key: [] for c in selected}
    before_runs: dict[str, list[Run]] = {c.key: [] for c in selected}
    for repeat in range(args.repeats):  # every case in turn, each repeat
        for case in selected:  # alternating with the baseline: both see the same machine
            if args.baseline and not case.huge:
                before_runs[case.key].append(measure_once(case, args.baseline))
            now_runs[case.key].append(measure_once(case, None))
        print(f"fleet_speed: repeat {repeat + 1} of {args.repeats} done", file=sys.stderr)
    print(f"{'case':58} {'engine s':>9} {'build s':>8} {'e2e s':>7} {'sessions':>10} "
          f"{'sessions/s':>11} {'peak MiB':>9}")
    measured: dict[str, Measured] = {}
    for case in selected:
        runs, before = now_runs[case.key], before_runs[case.key]
        m = Measured(median_run(runs), median_run(before) if before else None, runs, before)
        measured[case.key] = m
        print(row(case.label, m.now))
        print(f"{'':58} runs: engine {', '.join(f'{r.engine_s:.2f}' for r in runs)}; "
              f"e2e {', '.join(f'{r.wall_s:.2f}' for r in runs)}")
        if m.before is not None:
            print(row("  before", m.before))
            print(f"{'':58} speed-up: engine {m.before.engine_s / m.now.engine_s:.2f}x, "
                  f"end to end {m.before.wall_s / m.now.wall_s:.2f}x, peak memory "
                  f"{m.now.peak_mib / m.before.peak_mib:.2f}x")
        if case.key in ("10M", "100M"):
            clients = 10_000_000 if case.key == "10M" else 100_000_000
            print(f"{'':58} {m.now.peak_mib * 2**20 / clients:,.1f} bytes a client at peak")
    print("goals:")
    for case in CASES:
        if case.key in measured:
            for goal in case.goals:
                for line in goal(measured):
                    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
