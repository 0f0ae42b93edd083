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

from edgetwin.common.console import err_console, out_console
from edgetwin.common.errors import InputError

if TYPE_CHECKING:  # the bench is loaded when a calibration runs, not for every command
    from edgetwin.calibration.bench import Bench
    from edgetwin.calibration.trace import TraceRecords
    from edgetwin.profiles.device import CalibrationLoad, DeviceProfile


@dataclass(frozen=True)
class Target:
    """What a calibration measures and where its profile goes by default."""

    bench: Bench
    name: str
    out: Path


# `--device NAME --devices FILE [--out PROFILE] [--name NAME]`: an attached device,
# resolved by the layer above
AttachedTarget = Callable[[str, Path, "Path | None", "str | None"], Target]


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
    p.add_argument("--allow-busy", action="store_true",
                   help="calibrate a device that other work keeps busy (a quick calibration "
                   "refuses one); the profile records the load either way")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.set_defaults(func=lambda args: run_calibrate(args, attached))


def _target(args: argparse.Namespace, attached: AttachedTarget | None) -> Target:
    if args.devices is not None:
        if attached is None:
            raise InputError("--devices", "", "attached devices need the hil package")
        return attached(args.device, args.devices, args.out, args.name)
    if args.device not in ("local", "cuda"):
        raise InputError("--device", args.device, "expected local or cuda, or a device name "
                         "with --devices DEVICES.yaml")
    name = _default_name(args)
    from edgetwin.calibration.bench import LocalBench

    return Target(LocalBench("cpu" if args.device == "local" else "cuda", args.threads), name,
                  args.out or Path(f"{name}.yaml"))


def _default_name(args: argparse.Namespace) -> str:
    return str(args.name or f"local-{platform.node() or 'host'}")


def run_calibrate(args: argparse.Namespace, attached: AttachedTarget | None = None) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgetwin.calibration.calibrate import BusyDevice, run_calibration
    from edgetwin.calibration.fit import fit_groups
    from edgetwin.calibration.profile_builder import build_profile, write_profile
    from edgetwin.calibration.trace import read_records

    console = err_console()
    if args.import_metrics:
        return _import(args, args.out or Path(f"{_default_name(args)}.yaml"))
    if args.from_trace:
        name = _default_name(args)
        out = args.out or Path(f"{name}.yaml")
        records = read_records(args.from_trace)
        if not records.measurements:
            raise InputError(str(args.from_trace), "", "holds no measurements")
        trace = args.from_trace
        profile = _with_load(build_profile(name, records, trace, quick=False), None, records,
                             trace)
    else:
        target = _target(args, attached)
        name, out = target.name, target.out
        trace = args.trace or out.with_name(f"{out.stem}.trace.jsonl")
        with Progress(TextColumn("[bold]calibrating"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("", total=None)
            lines = ProgressLines(console) if not sys.stderr.isatty() else None

            def progress(done: int, total: int, case: str) -> None:
                bar.update(task, completed=done, total=total, description=case)
                if lines is not None:  # a log file or a pipe: a line now and then
                    lines.update(done, total, case)

            try:
                records = run_calibration(target.bench, trace_path=trace, quick=args.quick,
                                          resume=args.resume, progress=progress,
                                          allow_busy=args.allow_busy, device=name,
                                          warn=lambda line: console.print(
                                              f"edgetwin: warning: {line}"))
                # host facts, heap retention and probe steps, journaled in the trace too
                profile = build_profile(name, records, trace, quick=args.quick,
                                        bench=target.bench, progress=progress)
                profile = _with_load(profile, target.bench, records, trace)
            except KeyboardInterrupt:
                console.print(f"interrupted: the measurements so far are in {trace}; run the "
                              "same command with --resume to carry on")
                return 130
            finally:
                target.bench.close()
    if profile.load is not None and profile.load.busy:
        if args.quick and not args.allow_busy:
            raise BusyDevice(name, "load", f"the device was busy while it was measured "
                             f"({_load_line(profile.load)}): the profile is not written. The "
                             f"measurements are kept in {trace}: run the same command with "
                             "--resume --allow-busy to write it from them, or calibrate again "
                             "(without --resume) once the device is quiet")
        console.print(f"edgetwin: warning: {name} was busy while it was calibrated "
                      f"({_load_line(profile.load)}): its profile records it (load.busy)")
    write_profile(profile, out, f"Trace: {trace}.")
    _print_fits(fit_groups(records.measurements, {}), out, len(records.measurements))
    return 0


class ProgressLines:
    """Where stderr is no terminal (a log, a pipe), a progress line every
    `EVERY_S` seconds: measurements done, the case, the time so far and the time left at
    the rate so far."""

    EVERY_S = 10.0

    def __init__(self, console: Any) -> None:
        import time

        self.console, self.clock = console, time.monotonic
        self.t0 = self.last = self.clock()

    def update(self, done: int, total: int, case: str) -> None:
        now = self.clock()
        if now - self.last < self.EVERY_S or not total:
            return
        self.last = now
        spent = now - self.t0
        left = spent / done * (total - done) if done else float("nan")
        self.console.print(f"calibrating: {done}/{total} ({case}), {spent:.0f} s so far, "
                           f"about {left:.0f} s left", highlight=False)


def _with_load(profile: DeviceProfile, bench: Bench | None, records: TraceRecords,
               trace: Path) -> DeviceProfile:
    """The load read after the measurements (on a bench), journaled, and the profile's
    `load` section from every reading of the trace."""
    import dataclasses
    import time

    from edgetwin.calibration.load import profile_load
    from edgetwin.calibration.trace import TraceWriter
    from edgetwin.profiles.device import Provenance

    reading = bench.load() if bench is not None else None
    if reading is not None:
        writer = TraceWriter(trace)
        writer.write_record("load", phase="after", **reading.to_json())
        writer.close()
        records.loads.append(("after", reading))
    load = profile_load(records.loads)
    if load is None:
        return profile
    note = ("other processes' share of the device's CPUs over a second while calibration "
            "slept, and the spread (interquartile range / median) of a fixed 384 x 384 "
            "product's repeats, before and after the measurements; busy above "
            "25 % or a spread of 100 %; probe_s: the product's median time")
    return dataclasses.replace(profile, load=load, provenance={
        **profile.provenance, "load": Provenance("calibrated", "edgetwin.calibration.load",
                                                  time.strftime("%Y-%m-%d"), note)})


def _load_line(load: CalibrationLoad) -> str:
    return (f"other processes used {load.other_cpu_share_before:.0%} of its CPUs before and "
            f"{load.other_cpu_share_after:.0%} after; a fixed probe spread "
            f"{load.probe_spread_before:.0%} before and {load.probe_spread_after:.0%} after")


def _import(args: argparse.Namespace, out: Path) -> int:
    import dataclasses

    from edgetwin.calibration.importers import (
        correct_profile,
        load_eft_metrics,
        load_mft_memory_csv,
    )
    from edgetwin.calibration.profile_builder import write_profile
    from edgetwin.profiles.device import load_profile

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
    con = out_console()
    con.print(t)
    con.print(f"wrote {out}")
