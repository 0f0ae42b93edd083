"""Emulator speed and memory, each case in a fresh process, medians of repeats.

1. scenarios/thousand_clients.yaml end to end, plots included (target: 10 s).
2. 100,000 clients, 1,000 reporting clients a round, 100 rounds (target: 30 s, 2 GB).
3. The same with a tenfold idle fleet, 1,000,000 clients (target: under 2x case 2).

Usage: python benchmarks/fleet_speed.py [--repeats N]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "thousand_clients.yaml"


def run_case(overrides: list[str], plots: bool) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, client sessions) of one `edgetwin simulate`."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "hil.cli", "simulate", str(SCENARIO), "--out", out,
               "--quiet"]
        for o in overrides:
            cmd += ["--set", o]
        if not plots:
            cmd.append("--no-plots")
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        sessions = json.loads((Path(out) / "summary.json").read_text())["client_sessions"]
    # ru_maxrss of children is the largest child so far: report it only when it grew
    return wall, max(peak, before) / 1024, int(sessions)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cases = [
        ("thousand_clients.yaml, 100 rounds, with plots", [], True, 10.0),
        ("100,000 clients, 1,000 per round, 100 rounds",
         ["fleet.clients=100000", "orchestration.clients_per_round=1000"], False, 30.0),
        ("1,000,000 clients, 1,000 per round, 100 rounds",
         ["fleet.clients=1000000", "orchestration.clients_per_round=1000"], False, None),
    ]
    walls: list[float] = []
    print(f"{'case':48} {'median s':>9} {'runs':>20} {'peak MiB':>9} {'sessions':>9} "
          f"{'sessions/s':>10}  target")
    for label, overrides, plots, target in cases:
        runs = [run_case(overrides, plots) for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in runs)
        walls.append(wall)
        peak = max(r[1] for r in runs)
        sessions = runs[0][2]
        tgt = f"<= {target:.0f} s" if target else "< 2x the 100,000 case"
        print(f"{label:48} {wall:9.2f} {', '.join(f'{r[0]:.2f}' for r in runs):>20} "
              f"{peak:9.0f} {sessions:9,} {sessions / wall:10,.0f}  {tgt}")
    print(f"tenfold idle fleet costs {walls[2] / walls[1]:.2f}x the time (target: < 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
