"""`edgetwin protocol quality-under-budget|cost-to-target|robustness SCENARIO --app DIR
--methods fedavg,fedprox,flexlora`: each method's run of the app over the fleet, and the
protocol's table (printed and written as CSV) and plot of quality against time, energy
and traffic per method."""

from __future__ import annotations

import argparse
import csv
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgetwin.common.console import out_console
from edgetwin.common.errors import InputError
from edgetwin.common.files import read_table
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.flower.protocols import (
    PERTURBATIONS,
    Metric,
    Point,
    best,
    cost_to_target,
    parse_budget,
    quality_under_budget,
    read_points,
)

PROTOCOLS = ("quality-under-budget", "cost-to-target", "robustness")


def add_protocol_parser(sub: Any) -> None:
    p = sub.add_parser("protocol", help="EdgeFlowerTune's protocols over a Flower app",
                       description="Run a Flower app over the emulated fleet once per method "
                       "(and per perturbation), then compare the methods on quality and cost.")
    p.add_argument("protocol", choices=PROTOCOLS)
    p.add_argument("scenario", type=Path)
    p.add_argument("--app", type=Path, required=True, metavar="DIR")
    p.add_argument("--methods", default="fedavg,fedprox,flexlora",
                   help="values of the app's `method` config, comma-separated")
    p.add_argument("--metric", default="server_perplexity",
                   help="the quality column of app_metrics.csv (NAME, NAME:min or NAME:max)")
    p.add_argument("--budget", action="append", default=[],
                   help="quality-under-budget: time_s=, energy_j= or traffic_bytes= "
                   "(repeatable; default: each at the smallest final cost of the methods)")
    p.add_argument("--target", type=float, default=None,
                   help="cost-to-target: the quality to reach (default: the worst method's "
                   "best)")
    p.add_argument("--perturbations", default=",".join(PERTURBATIONS),
                   help="robustness: comma-separated, of " + ", ".join(PERTURBATIONS))
    p.add_argument("--run-config", default="", metavar="'KEY=VALUE ...'")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, default=None, help="default: runs/<scenario>-<protocol>")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS")
    p.set_defaults(func=run_protocol)


def run_protocol(args: argparse.Namespace) -> int:
    from edgetwin.emulator.scenario import load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    metric = Metric.parse(args.metric)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    out = args.out or Path("runs") / f"{scenario.name}-{args.protocol}"
    budgets = [parse_budget(b) for b in args.budget]
    variants: dict[str, Scenario] = {"none": scenario}
    if args.protocol == "robustness":
        for name in (n.strip() for n in args.perturbations.split(",") if n.strip()):
            if name not in PERTURBATIONS:
                raise InputError("--perturbations", name, "not one of "
                                 + ", ".join(PERTURBATIONS))
            variants[name] = PERTURBATIONS[name][1](scenario)
    runs: dict[str, dict[str, list[Point]]] = {}
    effects: dict[str, dict[str, dict[str, float]]] = {}
    for variant, s in variants.items():
        for method in methods:
            folder = out / (method if len(variants) == 1 else f"{variant}/{method}")
            _run_one(args, replace(s, name=f"{s.name}-{method}"), method, folder)
            metrics = folder / "app_metrics.csv"
            perturbed_to_nothing = variant != "none" and not metrics.is_file()
            runs.setdefault(variant, {})[method] = [] if perturbed_to_nothing else \
                read_points(metrics, metric)  # a perturbed app may measure nothing at all
            effects.setdefault(variant, {})[method] = fleet_effect(folder)
    rows = _table(args.protocol, runs, metric, budgets, args.target, effects)
    _write(out, args.protocol, rows, runs, metric)
    return 0


def _run_one(args: argparse.Namespace, scenario: Scenario, method: str, folder: Path) -> None:
    from edgetwin.emulator.flower.app import load_app
    from edgetwin.emulator.flower.run import AppDriver
    from edgetwin.emulator.flower.workers import workers_for
    from edgetwin.emulator.output.simulate import simulate

    app = load_app(args.app, f"{args.run_config} method='{method}'".strip())
    print(f"{args.protocol}: {method} ({folder})", flush=True)
    simulate(scenario, folder, plots=False, overwrite=args.overwrite,
             driver=AppDriver(app, workers_for(app, processes=args.workers,
                                               ray_address=args.ray)))


EFFECTS = ("sessions", "throttled", "battery", "offline", "interrupted", "transfer_s")


def fleet_effect(folder: Path) -> dict[str, float]:
    """What a run's fleet went through: its sessions, those that throttled, those that
    ended for an empty battery, a device gone offline or abandoned, and the mean
    seconds a session spent moving bytes (a perturbation's effect, whatever quality did)."""
    s = read_table(folder / "client_sessions.csv", ("throttled_s", "status"))
    n = len(s["status"])
    transfer = s["download_s"] + s["upload_s"] if n else np.zeros(0)
    return {"sessions": n, "throttled": int(np.sum(s["throttled_s"] > 0)),
            "battery": int(np.sum(s["status"] == "battery")),
            "offline": int(np.sum(s["status"] == "offline")),
            "interrupted": int(np.sum(s["status"] == "interrupted")),
            "transfer_s": round(float(transfer.mean()), 3) if n else 0.0}


def _table(protocol: str, runs: dict[str, dict[str, list[Point]]], metric: Metric,
           budgets: list[tuple[str, float]], target: float | None,
           effects: dict[str, dict[str, dict[str, float]]] | None = None,
           ) -> list[dict[str, Any]]:
    base = runs["none"]
    rows: list[dict[str, Any]] = []
    if protocol == "quality-under-budget":
        if not budgets:  # each cost at the smallest final cost among the methods
            budgets = [(k, min(p[-1].cost(k) for p in base.values() if p))
                       for k in ("time", "energy", "traffic")]
        for kind, budget in budgets:
            for method, points in base.items():
                hit = quality_under_budget(points, metric, kind, budget)
                rows.append({"budget": kind, "budget_value": budget, "method": method,
                             "quality": None if hit is None else hit.quality,
                             "round": None if hit is None else hit.round})
    elif protocol == "cost-to-target":
        if target is None:  # the worst method's best: every method can be scored
            bests = [b.quality for b in (best(p, metric) for p in base.values()) if b]
            target = max(bests) if metric.lower_is_better else min(bests)
        for method, points in base.items():
            hit = cost_to_target(points, metric, target)
            rows.append({"target": target, "method": method, "reached": hit is not None,
                         "round": hit.round if hit else None,
                         "virtual_time_s": hit.virtual_time_s if hit else None,
                         "energy_j": hit.energy_j if hit else None,
                         "traffic_bytes": hit.traffic_bytes if hit else None})
    else:
        for variant, by_method in runs.items():
            for method, points in by_method.items():
                ref = base[method][-1]
                last = points[-1] if points else Point(0, math.nan, math.nan, math.nan,
                                                       math.nan)
                effect = (effects or {}).get(variant, {}).get(method, {})
                same = effect == (effects or {}).get("none", {}).get(method, {}) and \
                    (last.virtual_time_s, last.energy_j, last.traffic_bytes) == \
                    (ref.virtual_time_s, ref.energy_j, ref.traffic_bytes)
                rows.append({"perturbation": variant, "method": method,
                             "final_quality": last.quality,
                             "quality_change": last.quality - ref.quality,
                             "virtual_time_s": last.virtual_time_s,
                             "time_ratio": last.virtual_time_s / ref.virtual_time_s,
                             "energy_j": last.energy_j,
                             "energy_ratio": last.energy_j / ref.energy_j,
                             "traffic_bytes": last.traffic_bytes,
                             **{k: effect.get(k) for k in EFFECTS},
                             "changed": "-" if variant == "none" else
                             ("nothing: check the perturbation" if same else "yes")})
    return rows


def _write(out: Path, protocol: str, rows: list[dict[str, Any]],
           runs: dict[str, dict[str, list[Point]]], metric: Metric) -> None:
    from rich.table import Table

    from edgetwin.emulator.flower.plots import plot_quality

    with (out / f"{protocol}.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    table = Table(title=f"{protocol} ({metric.column}, "
                  f"{'lower' if metric.lower_is_better else 'higher'} is better)",
                  title_justify="left")
    for col in rows[0]:
        table.add_column(col, justify="left" if col in ("method", "perturbation", "budget")
                         else "right")
    for r in rows:
        table.add_row(*(_cell(v) for v in r.values()))
    out_console().print(table)
    png = plot_quality(runs, metric, out / f"{protocol}.png")
    print(f"wrote {out / f'{protocol}.csv'} and {png}")


def _cell(v: Any) -> str:
    if v is None:
        return "not reached"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "none measured"
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)
