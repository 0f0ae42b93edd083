"""`edgetwin sweep`: a scenario over a grid of keys and many seeds, on all cores or a Ray
cluster; sweep.csv, sweep.md and plots out, and two settings compared with `--compare`."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from edgetwin.common.console import err_console
from edgetwin.common.errors import InputError
from edgetwin.emulator.commands import add_executor_args
from edgetwin.emulator.scenario import parse_value
from edgetwin.emulator.sweep.plan import Plan, plan
from edgetwin.emulator.sweep.spec import (
    SweepSpec,
    check_axes,
    is_sweep_file,
    load_sweep_file,
    parse_grid_arg,
    parse_seeds,
)

PLAIN_PROGRESS_S = 5.0  # without a terminal, a progress line at most this often


def add_sweep_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="run a scenario over a grid of settings and seeds",
                       description="Run a scenario for every combination of the --grid values "
                       "and every seed, in parallel; write each run's folder, sweep.csv, and "
                       "sweep.md with means, 95 % intervals and plots (docs/sweeps.md).")
    p.add_argument("source", type=Path, metavar="SCENARIO|SWEEP|FOLDER",
                   help="a scenario YAML (with --grid), a sweep file, or a sweep's folder")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a dotted scenario key (as --set takes it; app.KEY for the app's run "
                   "config) and its values, read as YAML (repeatable)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="a scenario key set in every run (repeatable)")
    p.add_argument("--seeds", default=None, metavar="N|S1,S2,...",
                   help="N seeds from the scenario's seed on, or the seeds to run (default 5)")
    add_executor_args(p, "the runs")
    p.add_argument("--out", type=Path, default=None,
                   help="the sweep's folder (default: runs/<scenario name>-sweep)")
    p.add_argument("--metric", action="append", default=[], metavar="NAME[:max|min]",
                   help="a metric to compare in sweep.md (repeatable; default: the headline "
                   "metrics)")
    p.add_argument("--target-rounds", type=int, default=None, metavar="N",
                   help="N of the 'time to N rounds' metric (default: the scenario's stop)")
    p.add_argument("--app", type=Path, default=None, metavar="DIR",
                   help="a Flower App project that runs each run's fleet (grid keys app.KEY)")
    p.add_argument("--run-config", default=None, metavar="'KEY=VALUE ...'",
                   help="the app's run config in every run, in Flower's syntax")
    p.add_argument("--run-plots", action="store_true",
                   help="draw each run's own plots too (off: the sweep's plots only)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                   help="print B minus A for two settings (numbers in sweep.md, or "
                   "KEY=VALUE,...) with 95 %% intervals")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.set_defaults(func=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    from edgetwin.emulator.sweep.compare import print_comparison
    from edgetwin.emulator.sweep.executors import executor_for
    from edgetwin.emulator.sweep.outputs import write_outputs
    from edgetwin.emulator.sweep.runner import RECORD, run_sweep

    source: Path = args.source
    if args.compare and not args.grid and not source.is_dir():
        raise InputError(str(source), "--compare", "no sweep folder here: --compare reads a "
                         "finished sweep's folder (its sweep.csv)")
    if source.is_dir():
        if args.compare and not args.grid and (source / "sweep.csv").is_file():
            return print_comparison(source, args.compare)
        if args.compare and not args.grid:
            raise InputError(str(source), "--compare", "holds no sweep.csv: run the sweep "
                             "first")
        source = source / RECORD
        if not source.is_file():
            raise InputError(str(args.source), "", "holds no sweep (no sweep.yaml)")
    if args.workers < 1:
        raise InputError("--workers", str(args.workers), "must be >= 1")
    spec = _spec(args, source)
    the_plan = plan(spec)
    _check_metrics(the_plan)
    for line in the_plan.warnings:
        print(f"warning: {line}", file=sys.stderr)
    folder = spec.out or Path("runs") / the_plan.name
    if args.ray:  # found out before anything is written
        from edgetwin.emulator.raycluster import check_address

        check_address(args.ray)
    before = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.workers > 1 or args.ray:  # this process waits on the runs: load outputs' code
            threading.Thread(target=_load_outputs_code, daemon=True).start()
        with _progress(the_plan, args.quiet) as progress:
            run = run_sweep(the_plan, folder, lambda: executor_for(args.workers, args.ray),
                            plots=args.run_plots, progress=progress)
    finally:
        signal.signal(signal.SIGTERM, before)
    if run.damaged:
        print(f"warning: {len(run.damaged)} run folder(s) not whole (a file missing or cut "
              f"short) ran again: {', '.join('runs/' + d for d in run.damaged)}",
              file=sys.stderr)
    write_outputs(run, quiet=args.quiet)
    if args.compare:
        print_comparison(folder, args.compare)
    if run.interrupted:
        print(f"edgetwin: interrupted: {run.not_run} of {len(the_plan.runs)} runs not run; "
              "the same command carries on", file=sys.stderr)
        return 130
    return 1 if run.failed else 0


def _load_outputs_code() -> None:
    """Import what sweep.md and the plots need while the workers run (a second or two
    that would otherwise come after the last run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot
    import scipy.special  # noqa: F401


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _spec(args: argparse.Namespace, source: Path) -> SweepSpec:
    """The sweep of a sweep file, or of a scenario and the flags; flags given with a
    sweep file add to it (more keys set, the seeds, the folder)."""
    fixed = []
    for item in args.overrides:
        key, eq, raw = item.partition("=")
        if not eq:
            raise InputError("--set", item, "expected dotted.key=value")
        fixed.append((key, parse_value(raw), "--set"))
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    if args.target_rounds is not None and args.target_rounds < 1:
        raise InputError("--target-rounds", str(args.target_rounds), "must be >= 1")
    grid = [parse_grid_arg(g) for g in args.grid]
    if is_sweep_file(source):
        spec = load_sweep_file(source)
        axes = check_axes([*spec.axes, *grid], spec.where)
        return SweepSpec(
            spec.scenario, axes, seeds if seeds is not None else spec.seeds,
            (*spec.fixed, *fixed), tuple(args.metric) or spec.metrics,
            args.target_rounds if args.target_rounds is not None else spec.target_rounds,
            args.out or spec.out,
            args.app or spec.app, args.run_config or spec.run_config, spec.name, spec.where)
    if not grid:
        raise InputError("--grid", "", f"{source} is a scenario: give at least one "
                         "--grid KEY=V1,V2,... (or a sweep file)")
    axes = check_axes(grid, "--grid")
    return SweepSpec(source, axes, seeds, tuple(fixed), tuple(args.metric),
                     args.target_rounds, args.out, args.app, args.run_config)


def _check_metrics(p: Plan) -> None:
    """Every metric asked for is one the runs will have."""
    from edgetwin.emulator.sweep.metrics import APP_PREFIX, known

    names = known(p.target_rounds, p.group_names)
    for metric in p.spec.metrics:
        name, _, way = metric.partition(":")
        if way not in ("", "max", "min"):
            raise InputError("--metric", metric, "expected NAME, NAME:max or NAME:min")
        if name not in names and not (p.spec.app is not None and name.startswith(APP_PREFIX)):
            raise InputError("--metric", name, "not a metric of the runs (docs/sweeps.md "
                             "lists them)")


class _progress:
    """A progress bar of runs done, running and failed, with the time left; plain lines
    without a terminal."""

    def __init__(self, p: Plan, quiet: bool) -> None:
        self.plan = p
        self.quiet = quiet
        self.bar: Any = None
        self.last = -math.inf

    def __enter__(self) -> Any:
        if self.quiet:
            return None
        if not sys.stderr.isatty():
            return self._plain
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            TextColumn("{task.completed}/{task.total} done, "
                                       "{task.fields[running]} running, "
                                       "{task.fields[failed]} failed"),
                            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                            console=err_console(), transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task(self.plan.name, total=None, running=0, failed=0)
        return self._bar

    def _bar(self, done: int, running: int, failed: int, total: int) -> None:
        self.bar.update(self.task, completed=done + failed, total=total, running=running,
                        failed=failed)

    def _plain(self, done: int, running: int, failed: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last > PLAIN_PROGRESS_S or done + failed == total:
            print(f"{self.plan.name}: {done + failed}/{total} runs done, {running} running, "
                  f"{failed} failed", file=sys.stderr, flush=True)
            self.last = now

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
