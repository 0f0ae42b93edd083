"""Emulator speed and memory: each case a fresh `edgetwin simulate`, medians of repeats.

Per case: the engine's time (from the scenario loaded to the results in memory: the
fleet's build and the events, as run.json records it; no interpreter start, no files,
no plots), end to end (the whole command), client sessions per engine second, and the
command's peak memory.

Usage: python benchmarks/fleet_speed.py [--repeats N] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "thousand_clients.yaml"
BIG = ["fleet.clients=100000", "orchestration.clients_per_round=1000"]
IDLE = ["fleet.clients=1000000", "orchestration.clients_per_round=1000"]
MILLION = ["fleet.clients=1000000", "orchestration.clients_per_round=10000"]


@dataclass(frozen=True)
class Case:
    label: str
    overrides: list[str]
    plots: bool
    target: str


CASES = [
    Case("thousand_clients.yaml, plots", [], True, "e2e <= 10 s"),
    Case("100k clients x 1,000 a round x 100", BIG, False,
         ">= 200,000 sessions/s; e2e <= 2 s"),
    Case("thousand_clients.yaml, async", ["orchestration.mode=async"], False,
         ">= 50,000 sessions/s"),
    Case("1M clients x 10,000 a round x 100", MILLION, False, "e2e <= 15 s, <= 4 GB"),
    Case("1M clients x 1,000 a round x 100 (idle)", IDLE, False, "< 1.3x the 100k case"),
]


@dataclass(frozen=True)
class Run:
    engine_s: float
    wall_s: float
    peak_mib: float
    sessions: int


def run_case(case: Case) -> Run:
    """One `edgetwin simulate` in a fresh process."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "edgetwin.cli", "simulate", str(SCENARIO), "--out", out,
               "--quiet"]
        for o in case.overrides:
            cmd += ["--set", o]
        if not case.plots:
            cmd.append("--no-plots")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        # ru_maxrss of children is the largest child so far: each case runs in a
        # fresh benchmark process (see main), so this is this case's
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        info = json.loads((Path(out) / "run.json").read_text())
        sessions = json.loads((Path(out) / "summary.json").read_text())["client_sessions"]
    return Run(float(info["engine_s"]), wall, peak, int(sessions))


def measure(case: Case, repeats: int) -> list[Run]:
    """`repeats` runs of a case, each from a fresh benchmark process (so that the peak
    memory read is this case's alone)."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, __file__, "--one", case.label],
                              check=True, capture_output=True, text=True, cwd=ROOT)
        runs.append(Run(**json.loads(done.stdout)))
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="run the cases whose label contains this")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        r = run_case(next(c for c in CASES if c.label == args.one))
        print(json.dumps(r.__dict__))
        return 0
    print(f"{'case':42} {'engine s':>9} {'e2e s':>7} {'sessions':>10} {'sessions/s':>11} "
          f"{'peak MiB':>9}  target")
    medians: dict[str, Run] = {}
    for case in CASES:
        if args.only not in case.label:
            continue
        runs = measure(case, args.repeats)
        m = Run(statistics.median(r.engine_s for r in runs),
                statistics.median(r.wall_s for r in runs), max(r.peak_mib for r in runs),
                runs[0].sessions)
        medians[case.label] = m
        print(f"{case.label:42} {m.engine_s:9.2f} {m.wall_s:7.2f} {m.sessions:10,} "
              f"{m.sessions / m.engine_s:11,.0f} {m.peak_mib:9,.0f}  {case.target}")
        print(f"{'':42} runs: engine {', '.join(f'{r.engine_s:.2f}' for r in runs)}; "
              f"e2e {', '.join(f'{r.wall_s:.2f}' for r in runs)}")
    big, idle = medians.get(CASES[1].label), medians.get(CASES[4].label)
    if big and idle:
        print(f"tenfold idle fleet: engine {idle.engine_s / big.engine_s:.2f}x, end to end "
              f"{idle.wall_s / big.wall_s:.2f}x the time (target < 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
