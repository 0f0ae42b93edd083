"""Sweep speed: the same sweep run one run after another (`--workers 1`) and on the local
process pool (`--workers` = all cores), each a fresh `edgetwin sweep` command timed end
to end (interpreter start, the settings checked, every run, sweep.csv, sweep.md and the
plots), into a fresh folder. Repeats alternate the order; medians are quoted, and the
ratio of the medians. The two sweeps' sweep.csv must be the same bytes.

The sweep is the README's: scenarios/thousand_clients.yaml over 3 selection policies x
2 over-commitments x 10 seeds (60 runs).

Usage: python benchmarks/sweep_speed.py [--repeats N] [--seeds N] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "thousand_clients.yaml"
GRID = ["selection.policy=random,deadline_aware,oort", "orchestration.overcommit=0.2,0.5"]
TARGET_RATIO = 0.6


def sweep_s(out: Path, workers: int, seeds: int) -> float:
    cmd = [str(Path(sys.executable).parent / "edgetwin"), "sweep", str(SCENARIO),
           *[x for g in GRID for x in ("--grid", g)], "--seeds", str(seeds),
           "--workers", str(workers), "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    runs = 3 * 2 * args.seeds
    one: list[float] = []
    pool: list[float] = []
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            order = [1, args.workers] if i % 2 == 0 else [args.workers, 1]
            for workers in order:
                out = Path(tmp) / f"w{workers}-{i}"
                (one if workers == 1 else pool).append(sweep_s(out, workers, args.seeds))
            a = (Path(tmp) / f"w1-{i}" / "sweep.csv").read_bytes()
            b = (Path(tmp) / f"w{args.workers}-{i}" / "sweep.csv").read_bytes()
            same = same and a == b
            print(f"repeat {i + 1}: one after another {one[-1]:.1f} s, {args.workers} workers "
                  f"{pool[-1]:.1f} s, ratio {pool[-1] / one[-1]:.2f}", flush=True)
    m1, mp = statistics.median(one), statistics.median(pool)
    print(f"\n{runs} runs of {SCENARIO.name} ({' x '.join(GRID)}, {args.seeds} seeds), "
          f"{os.cpu_count()} cores, median of {args.repeats}:")
    print(f"  one after another (--workers 1): {m1:7.1f} s  ({m1 / runs:.2f} s per run)")
    print(f"  local pool (--workers {args.workers}):      {mp:7.1f} s  ({mp / runs:.2f} s per run)")
    print(f"  ratio pool / one after another:  {mp / m1:7.2f}  (target <= {TARGET_RATIO})")
    print(f"  sweep.csv the same bytes:        {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
