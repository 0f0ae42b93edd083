"""`edgetwin calibrate`: a device (or a trace from another measuring program) in, a
device profile out."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from profiles.errors import InputError

if TYPE_CHECKING:  # the bench is loaded when a calibration runs, not for every command
    from calibration.bench import Bench


@dataclass(frozen=True)
class Target:
    """What a calibration measures and where its profile goes by default."""

    bench: Bench
    name: str
    out: Path


# `--device NAME --devices FILE`: an attached device, resolved by the layer above
AttachedTarget = Callable[[argparse.Namespace], Target]


def add_calibrate_parser(sub: Any, attached: AttachedTarget | None = None) -> None:
    p = sub.add_parser("calibrate", help="measure a device into a device profile",
                       description="Time every op kind the workload model uses, fit per-op "
                       "costs, and write a device profile with provenance and fit errors.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--device", metavar="local|cuda|NAME",
                     help="measure this machine's CPU (local) or its GPU (cuda), or the "
                     "attached device NAME of --devices")
    src.add_argument("--from-trace", type=Path, metavar="TRACE",
                     help="fit a profile from an existing trace (e.g. the native benchmark)")
    src.add_argument("--import-metrics", type=Path, metavar="JSON",
                     help="correct --profile from EdgeFlowerTune-style client metrics")
    p.add_argument("--devices", type=Path, default=None, metavar="DEVICES.yaml",
                   help="the inventory that names --device (see docs/devices.md)")
    p.add_argument("--profile", default=None, help="the profile --import-metrics corrects")
    p.add_argument("--memory-csv", type=Path, default=None,
                   help="with --import-metrics: MobileFineTuner's proc_mem_monitor CSV, "
                   "whose average RSS replaces the metrics' avg_rss_mb")
    p.add_argument("--name", default=None, help="profile name (default: local-<host>, or the "
                   "attached device's profile)")
    p.add_argument("--out", type=Path, default=None, help="profile YAML (default: NAME.yaml, "
                   "or the attached device's profile file)")
    p.add_argument("--trace", type=Path, default=None,
                   help="measurement trace (default: beside the profile, NAME.trace.jsonl)")
    p.add_argument("--quick", action="store_true", help="fewer shapes, shorter timings")
    p.add_argument("--resume", action="store_true", help="continue an interrupted trace")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.set_defaults(func=lambda args: run_calibrate(args, attached))


def _target(args: argparse.Namespace, attached: AttachedTarget | None) -> Target:
    if args.devices is not None:
        if attached is None:
            raise InputError("--devices", "", "attached devices need the hil package")
        return attached(args)
    if args.device not in ("local", "cuda"):
        raise InputError("--device", args.device, "expected local or cuda, or a device name "
                         "with --devices DEVICES.yaml")
    name = _default_name(args)
    from calibration.bench import LocalBench

    return Target(LocalBench("cpu" if args.device == "local" else "cuda", args.threads), name,
                  args.out or Path(f"{name}.yaml"))


def _default_name(args: argparse.Namespace) -> str:
    return str(args.name or f"local-{platform.node() or 'host'}")


def run_calibrate(args: argparse.Namespace, attached: AttachedTarget | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from calibration.calibrate import run_calibration
    from calibration.fit import fit_groups
    from calibration.profile_builder import build_profile, write_profile
    from calibration.trace import read_records

    console = Console(stderr=True, highlight=False)
    if args.import_metrics:
        return _import(args, args.out or Path(f"{_default_name(args)}.yaml"))
    if args.from_trace:
        name = _default_name(args)
        out = args.out or Path(f"{name}.yaml")
        records = read_records(args.from_trace)
        if not records.measurements:
            raise InputError(str(args.from_trace), "", "holds no measurements")
        trace = args.from_trace
        profile = build_profile(name, records, trace, quick=False)
    else:
        target = _target(args, attached)
        name, out = target.name, target.out
        trace = args.trace or out.with_name(f"{out.stem}.trace.jsonl")
        with Progress(TextColumn("[bold]calibrating"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("", total=None)

            def progress(done: int, total: int, case: str) -> None:
                bar.update(task, completed=done, total=total, description=case)

            try:
                records = run_calibration(target.bench, trace_path=trace, quick=args.quick,
                                          resume=args.resume, progress=progress)
                # host facts, heap retention and probe steps, journaled in the trace too
                profile = build_profile(name, records, trace, quick=args.quick,
                                        bench=target.bench, progress=progress)
            except KeyboardInterrupt:
                console.print(f"interrupted: the measurements so far are in {trace}; run the "
                              "same command with --resume to carry on")
                return 130
            finally:
                target.bench.close()
    write_profile(profile, out, f"Trace: {trace}.")
    _print_fits(fit_groups(records.measurements, {}), out, len(records.measurements))
    return 0


def _import(args: argparse.Namespace, out: Path) -> int:
    import dataclasses

    from calibration.importers import correct_profile, load_eft_metrics, load_mft_memory_csv
    from calibration.profile_builder import write_profile
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
