"""`edgetwin simulate`: a scenario in, a run folder out, a summary table on the screen."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgetwin.common.console import err_console, out_console
from edgetwin.common.errors import InputError
from edgetwin.common.quantities import BYTES, DURATION, ENERGY, unit_for
from edgetwin.common.quantities import shown as quantity
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.observer import Observer
from edgetwin.emulator.scenario import load_scenario

if TYPE_CHECKING:
    from edgetwin.emulator.output.simulate import Driver

# what watches a run beside the engine (periodic validation on attached devices), given
# by the layer above: scenario and its folder in, an observer (or None) out
ObserverFor = Callable[[Scenario, Path], Observer | None]
PLAIN_PROGRESS_S = 2.0  # without a terminal, a progress line at most this often


def add_simulate_parser(sub: Any, observer_for: ObserverFor | None = None) -> None:
    p = sub.add_parser("simulate", help="run a fleet scenario in virtual time",
                       description="Emulate a federated fine-tuning fleet described by a "
                       "scenario YAML; write metrics, plots and a report to a run folder.")
    p.add_argument("scenario", type=Path, metavar="SCENARIO",
                   help="a scenario YAML, or the name of a shipped one (edgetwin scenarios "
                   "list)")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder (default: runs/<scenario name>)")
    p.add_argument("--seed", type=int, default=None, help="overrides the scenario's seed")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a scenario key, e.g. "
                   "orchestration.deadline_s=900 (repeatable)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the earlier run in --out (refused without it)")
    p.add_argument("--app", type=Path, default=None, metavar="DIR",
                   help="a Flower App project: its ServerApp runs over the emulated fleet "
                   "in virtual time, and the ClientApps of the nodes that report train for real")
    p.add_argument("--run-config", default=None, metavar="'KEY=VALUE ...'",
                   help="override the app's [tool.flwr.app.config], in Flower's syntax")
    add_executor_args(p, "the ClientApps")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", dest="table_format",
                   help="rounds and client_sessions as CSV (default, the same bytes for a "
                   "seed) or Parquet (compressed, typed; needs pip install "
                   "'edgetwin[parquet]')")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.set_defaults(func=lambda args: run_simulate(args, observer_for))


def add_scenarios_parser(sub: Any) -> None:
    p = sub.add_parser("scenarios", help="the scenarios that ship with edgetwin",
                       description="List the shipped scenarios, the example devices file and "
                       "the Flower app, or copy one out to edit it. `edgetwin simulate NAME` "
                       "runs a shipped scenario by name.")
    ps = p.add_subparsers(dest="scenarios_command", required=True, parser_class=type(p))
    ps.add_parser("list", help="each with a line").set_defaults(func=run_scenarios_list)
    cp = ps.add_parser("copy", help="an editable copy, with the files it needs")
    cp.add_argument("name", metavar="NAME")
    cp.add_argument("dir", nargs="?", type=Path, default=Path("."), metavar="DIR",
                    help="where to write it (default: here)")
    cp.set_defaults(func=run_scenarios_copy)


def run_scenarios_list(args: argparse.Namespace) -> int:
    from edgetwin.emulator.catalogue import shipped

    items = shipped()
    width = max(len(s.name) for s in items)
    for s in items:
        print(f"{s.name:<{width}}  {s.kind:<8}  {s.description}")
    return 0


def run_scenarios_copy(args: argparse.Namespace) -> int:
    from edgetwin.emulator.catalogue import copy_out

    written = copy_out(args.name, args.dir)
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def add_executor_args(p: Any, what: str) -> None:
    """`--workers N | --ray auto|ADDRESS`: where `what` runs (simulate's ClientApps, a
    sweep's runs)."""
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help=f"processes that run {what} (default: one per core; 1: this one)")
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                   help=f"run {what} on a Ray cluster instead (auto: this machine's, or a "
                   "new local one)")


def run_simulate(args: argparse.Namespace, observer_for: ObserverFor | None = None) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgetwin.emulator.output.simulate import simulate

    scenario = load_scenario(args.scenario, args.overrides, args.seed)
    out = args.out or Path("runs") / scenario.name
    console = err_console()
    total = scenario.stop.rounds
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("round {task.completed:.0f}/{task.total}"),
                  TextColumn("virtual {task.fields[hours]:.1f} h"), TimeElapsedColumn(),
                  console=console, disable=args.quiet or not sys.stderr.isatty(),
                  transient=True) as bar:
        task = bar.add_task(scenario.name, total=total, hours=0.0)
        last = [0.0, -math.inf]  # the bar's last update, the last plain line
        plain = not args.quiet and not sys.stderr.isatty()  # a log, not a terminal

        def progress(rnd: int, now_s: float) -> None:
            now = time.perf_counter()
            if now - last[0] > 0.1:
                bar.update(task, completed=rnd + 1, hours=now_s / 3600)
                last[0] = now
            if plain and now - last[1] > PLAIN_PROGRESS_S:
                print(f"{scenario.name}: round {rnd + 1}/{total or '?'}, virtual "
                      f"{now_s / 3600:.1f} h", file=sys.stderr, flush=True)
                last[1] = now

        if args.table_format == "parquet":  # refused before the run, not after it
            from edgetwin.emulator.output.parquet import pyarrow_modules

            pyarrow_modules()
        observer = observer_for(scenario, args.scenario.parent) if observer_for else None
        try:
            run = simulate(scenario, out, plots=not args.no_plots, overwrite=args.overwrite,
                           progress=progress, observer=observer, warn=_warn,
                           driver=_app_driver(args), table_format=args.table_format)
        finally:
            if observer is not None:
                observer.close()
    if not args.quiet:
        _print_summary(run.summary, out, run.wall_s, plots=not args.no_plots,
                       tables=args.table_format)
    return 130 if run.results.stop_reason == "interrupted" else 0


def _app_driver(args: argparse.Namespace) -> Driver | None:
    """With `--app`: the Flower app that runs the fleet, and its workers."""
    if args.app is None:
        if args.run_config or args.ray:
            raise InputError("--run-config" if args.run_config else "--ray", "",
                             "applies to a Flower app: give --app DIR")
        return None
    from edgetwin.emulator.flower.app import load_app
    from edgetwin.emulator.flower.run import AppDriver
    from edgetwin.emulator.flower.workers import workers_for

    if args.workers < 1:
        raise InputError("--workers", str(args.workers), "must be >= 1")
    app = load_app(args.app, args.run_config)
    if args.quiet:  # Flower's own round-by-round log
        import logging

        logging.getLogger("flwr").setLevel(logging.WARNING)
    _warn("orchestration and selection: the app's strategy samples and aggregates; of the "
          "scenario's rounds only orchestration.deadline_s (the cap on its timeout) and the "
          "stop rules on virtual time, energy and traffic apply")
    return AppDriver(app, workers_for(app, processes=args.workers, ray_address=args.ray))


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


def _print_summary(s: dict[str, Any], out: Path, wall_s: float, plots: bool = True,
                   tables: str = "csv") -> None:
    from rich.table import Table

    con = out_console()
    groups = list(s["groups"].values())
    # the unit in which every group's figure reads 1 or more (26.6 J is not "0.0 kJ")
    e_scale, e_unit = unit_for(_smallest([g["energy_j"] for g in groups]), ENERGY)
    b_scale, b_unit = unit_for(_smallest([g[k] for g in groups
                                          for k in ("upload_bytes", "download_bytes")]), BYTES)
    t = Table(title=f"{s['scenario']}: {s['rounds_completed']} rounds in "
              f"{quantity(s['virtual_time_s'], DURATION)} virtual ({s['stop_reason']}), "
              f"seed {s['seed']}", title_justify="left")
    stale = s["mode"] == "async"  # only asynchronous servers discard stale reports
    for col in ("group", "clients", "sessions", "completed", *(["stale"] if stale else []),
                f"energy {e_unit}", f"up {b_unit}", f"down {b_unit}", "early ends"):
        t.add_column(col, justify="left" if col in ("group", "early ends") else "right")
    rows = [*list(s["groups"].items()), ("all", {**s, "clients": s["fleet_clients"]})]
    for name, g in rows:
        fails = ", ".join(f"{k} {v:,}" for k, v in g["failures"].items()
                          if v and k != "stale") or "-"
        t.add_row(name, f"{g['clients']:,}", f"{g['client_sessions']:,}",
                  f"{g['completed_sessions']:,}",
                  *([f"{g['failures']['stale']:,}"] if stale else []),
                  f"{g['energy_j'] / e_scale:,.1f}", f"{g['upload_bytes'] / b_scale:,.1f}",
                  f"{g['download_bytes'] / b_scale:,.1f}", fails)
    con.print(t)
    con.print(f"energy {_e(s['energy_j'], e_scale, e_unit)}: "
              f"{_e(s['energy_j_in_rounds'], e_scale, e_unit)} in rounds.csv, "
              f"{_e(s['energy_j_after_last_round'], e_scale, e_unit)} after the last round, "
              f"{_e(s['energy_j_running_at_stop'], e_scale, e_unit)} in sessions the stop cut "
              f"short; apart from it, {quantity(s['energy_j_idle_standby'], ENERGY)} idle "
              "(standby outside sessions)")
    files = (f"report.md, summary.json, rounds.{tables}, client_sessions.{tables}, "
             "scenario.resolved.yaml")
    con.print(f"mean round {quantity(s['mean_round_s'], DURATION)}; "
              f"{s['client_sessions'] / wall_s:,.0f} sessions per wall second; wrote {out}/ "
              f"({files}{', plots' if plots else ''})")


def _smallest(values: list[float]) -> float:
    positive = [v for v in values if v > 0]
    return min(positive) if positive else 0.0


def _e(value_j: float, scale: float, unit: str) -> str:
    return f"{value_j / scale:,.1f} {unit}"
