"""`edgetwin calibrate`: a device (or a trace from another measuring program) in, a
device profile out."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from typing import Any

from profiles.errors import InputError


def add_calibrate_parser(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="measure a device into a device profile",
                       description="Time every op kind the workload model uses, fit per-op "
                       "costs, and write a device profile with provenance and fit errors.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--device", choices=["local", "cuda"],
                     help="measure this machine's CPU (local) or its GPU (cuda)")
    src.add_argument("--from-trace", type=Path, metavar="TRACE",
                     help="fit a profile from an existing trace (e.g. the native benchmark)")
    src.add_argument("--import-metrics", type=Path, metavar="JSON",
                     help="correct --profile from EdgeFlowerTune-style client metrics")
    p.add_argument("--profile", default=None, help="the profile --import-metrics corrects")
    p.add_argument("--memory-csv", type=Path, default=None,
                   help="with --import-metrics: MobileFineTuner's proc_mem_monitor CSV, "
                   "whose average RSS replaces the metrics' avg_rss_mb")
    p.add_argument("--name", default=None, help="profile name (default: local-<host>)")
    p.add_argument("--out", type=Path, default=None, help="profile YAML (default: NAME.yaml)")
    p.add_argument("--trace", type=Path, default=None,
                   help="measurement trace (default: NAME.trace.jsonl)")
    p.add_argument("--quick", action="store_true", help="fewer shapes, shorter timings")
    p.add_argument("--resume", action="store_true", help="continue an interrupted trace")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from calibration.calibrate import build_profile, run_calibration, write_profile
    from calibration.fit import fit_groups
    from calibration.trace import read_trace

    name = args.name or f"local-{platform.node() or 'host'}"
    out = args.out or Path(f"{name}.yaml")
    console = Console(stderr=True, highlight=False)
    if args.import_metrics:
        return _import(args, out)
    if args.from_trace:
        measurements = read_trace(args.from_trace)
        if not measurements:
            raise InputError(str(args.from_trace), "", "holds no measurements")
        trace = args.from_trace
        profile = build_profile(name, measurements, trace, quick=False, measure_host=False,
                                in_situ=False)
    else:
        trace = args.trace or Path(f"{name}.trace.jsonl")
        device = "cpu" if args.device == "local" else "cuda"
        with Progress(TextColumn("[bold]calibrating"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("", total=None)

            def progress(done: int, total: int, case: str) -> None:
                bar.update(task, completed=done, total=total, description=case)

            try:
                measurements = run_calibration(device=device, trace_path=trace,
                                               quick=args.quick, resume=args.resume,
                                               threads=args.threads, progress=progress)
                # probe steps: in-situ factors and the allocator's heap retention
                profile = build_profile(name, measurements, trace, quick=args.quick,
                                        progress=progress)
            except KeyboardInterrupt:
                console.print(f"interrupted: the measurements so far are in {trace}; run the "
                              "same command with --resume to carry on")
                return 130
    write_profile(profile, out, f"Trace: {trace}.")
    _print_fits(fit_groups(measurements, {}), out, len(measurements))
    return 0


def _import(args: argparse.Namespace, out: Path) -> int:
    import dataclasses

    from calibration.calibrate import write_profile
    from calibration.importers import correct_profile, load_eft_metrics, load_mft_memory_csv
    from profiles.device import load_profile

    if not args.profile:
        raise InputError("--profile", "", "--import-metrics needs the profile to correct")
    profile = load_profile(args.profile)
    runs = load_eft_metrics(args.import_metrics)
    source = f"EdgeFlowerTune client metrics {args.import_metrics.name} ({len(runs)} runs)"
    if args.memory_csv:
        avg, _ = load_mft_memory_csv(args.memory_csv)
        runs = [dataclasses.replace(r, avg_rss_mb=avg) for r in runs]
        source += f" and memory monitor {args.memory_csv.name}"
    fixed, fit = correct_profile(profile, runs, source)
    if args.name:
        fixed = dataclasses.replace(fixed, name=args.name)
    write_profile(fixed, out, f"Corrected from {source}.")
    print(f"step-time error after correction: {fit['step_mape_pct']:.2f} % over "
          f"{int(fit['runs'])} runs; upload-byte mismatches: "
          f"{int(fit['upload_bytes_mismatches'])}; runtime memory "
          f"{fixed.memory.runtime_overhead_mb:g} MiB; wrote {out}")
    return 0


def _print_fits(fits: dict[str, Any], out: Path, n: int) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"per-op fits from {n} measurements, scored on held-out shapes",
              title_justify="left")
    for col in ("op", "train", "test", "MAPE %", "RMSPE %", "within 5 %", "within 10 %"):
        t.add_column(col, justify="left" if col == "op" else "right")
    for key, f in fits.items():
        s = f.score
        if not s.n_test:
            t.add_row(key, str(s.n_train), "0", "-", "-", "-", "-")
            continue
        t.add_row(key, str(s.n_train), str(s.n_test), f"{s.mape_pct:.1f}", f"{s.rmspe_pct:.1f}",
                  f"{s.within_5pct:.0%}", f"{s.within_10pct:.0%}")
    con = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    con.print(t)
    con.print(f"wrote {out}")
