"""A Flower app's ServerApp run over the virtual-time grid, in place of the scenario's
own rounds, and what the app reported: the strategy's aggregated metrics per round,
each at the virtual time, fleet energy and traffic it had cost by then."""

from __future__ import annotations

import csv
import dataclasses
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp.strategy import Result, Strategy

from edgetwin.emulator.engine import Engine, Results
from edgetwin.emulator.flower.app import FlowerApp, load_component
from edgetwin.emulator.flower.grid import StopRun, VirtualGrid
from edgetwin.emulator.flower.plots import plot_quality
from edgetwin.emulator.flower.pricing import KINDS
from edgetwin.emulator.flower.protocols import Metric, points_of
from edgetwin.emulator.flower.workers import Workers

METRICS_FILE = "app_metrics.csv"
QUALITY_PLOT = "app_quality.png"


@dataclass
class AppDriver:
    """Runs `app` over the fleet with `workers` for its ClientApps."""

    app: FlowerApp
    workers: Workers
    grid: VirtualGrid | None = None
    results: list[Result] = field(default_factory=list)
    legacy: list[Any] = field(default_factory=list)  # LegacyContexts: their history

    def run(self, engine: Engine) -> Results:
        self.grid = grid = VirtualGrid(engine, self.workers, self.app.run_config)
        seed = int(engine.streams.generator("flower").integers(2**32))
        random.seed(seed)  # Flower's strategies sample nodes with `random`
        np.random.seed(seed)
        server_app = load_component(self.app, "serverapp")
        context = Context(run_id=grid.run.run_id, node_id=SUPERLINK_NODE_ID, node_config={},
                          state=RecordDict(), run_config=dict(self.app.run_config))
        try:
            with _capturing(self.results, self.legacy), _server_identity(grid.run.run_id), \
                    _virtual_waits(grid):
                server_app(grid=grid, context=context)
            engine.stop_reason = "done"
        except StopRun as stop:
            engine.stop_reason = stop.reason
        except KeyboardInterrupt:
            engine.stop_reason = "interrupted"
        finally:
            self.workers.close()
        results = engine.results(grid.now_s)
        kinds = np.concatenate(grid.log.kinds) if grid.log.kinds else np.zeros(0, np.int64)
        return dataclasses.replace(results, label_columns={"kind": (kinds, KINDS)})

    def write(self, out: Path, results: Results) -> list[str]:
        rows = self.metric_rows()
        if not rows:
            return ["The app's strategy reported no metrics (through `Strategy.start`, or a "
                    "legacy strategy's history)."]
        names = sorted({k for r in rows for k in r} - {"round", "virtual_time_s",
                                                          "energy_j", "traffic_bytes"})
        columns = ["round", "virtual_time_s", "energy_j", "traffic_bytes", *names]
        with (out / METRICS_FILE).open("w", newline="") as fh:
            w = csv.DictWriter(fh, columns)
            w.writeheader()
            w.writerows(rows)
        last = rows[-1]
        shown = ", ".join(f"{k} {last[k]:.4g}" for k in names if isinstance(last.get(k), float))
        lines = ["## What the app reported", "",
                 f"{len(rows)} rounds in {METRICS_FILE} (the strategy's aggregated metrics "
                 f"per round, at the virtual time, energy and traffic of that round's end). "
                 f"Last round: {shown}.", ""]
        quality = [n for n in names if n.startswith("server_")]
        if quality:
            column = "server_perplexity" if "server_perplexity" in quality else quality[0]
            metric = Metric.parse(column)
            plot_quality({"none": {str(self.app.run_config.get("method", "app")):
                                   points_of(rows, metric)}},
                         metric, out / QUALITY_PLOT)
            lines += [f"![{column} against time, energy and traffic]({QUALITY_PLOT})", ""]
        return lines

    def metric_rows(self) -> list[dict[str, Any]]:
        """One row per app round: its metrics and what the fleet had spent by its end."""
        if self.grid is None or not (self.results or self.legacy):
            return []
        done: dict[int, tuple[float, float, float]] = {0: (0.0, 0.0, 0.0)}
        energy = traffic = 0.0
        for x in self.grid.log.exchanges:
            energy += x.energy_j
            traffic += x.upload_bytes + x.download_bytes
            if x.server_round is not None:
                done[x.server_round] = (x.end_s, energy, traffic)
        rows: dict[int, dict[str, Any]] = {}
        for result in self.results:
            for prefix, per_round in (("train_", result.train_metrics_clientapp),
                                      ("evaluate_", result.evaluate_metrics_clientapp),
                                      ("server_", result.evaluate_metrics_serverapp)):
                for rnd, metrics in per_round.items():
                    row = rows.setdefault(int(rnd), {"round": int(rnd)})
                    row.update({f"{prefix}{k}": _number(v) for k, v in metrics.items()})
        for context in self.legacy:  # Flower's legacy workflows keep a History
            h = context.history
            for prefix, per_name in (("train_", h.metrics_distributed_fit),
                                     ("evaluate_", h.metrics_distributed),
                                     ("server_", h.metrics_centralized)):
                for name, points in per_name.items():
                    for rnd, value in points:
                        row = rows.setdefault(int(rnd), {"round": int(rnd)})
                        row[f"{prefix}{name}"] = _number(value)
        for rnd, row in rows.items():
            t, e, b = done.get(rnd, (float("nan"),) * 3)
            row.update(virtual_time_s=round(t, 3), energy_j=round(e, 3),
                       traffic_bytes=round(b, 0))
        return [rows[r] for r in sorted(rows)]


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) else str(value)


@contextmanager
def _server_identity(run_id: int) -> Iterator[None]:
    """This process runs the ServerApp of run `run_id` (Flower's messages read it)."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id = 1, run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    try:
        yield
    finally:
        for name in ("_task_id", "_run_id", "_node_id"):
            setattr(TaskIdentity, name, None)


@contextmanager
def _virtual_waits(grid: VirtualGrid) -> Iterator[None]:
    """Flower's server-side waits for nodes, in virtual time: the message-based
    strategies' `sleep(1)` between asks for nodes, and the legacy client manager's
    `wait_for`, wait on the grid (`VirtualGrid.wait`), whose clock moves on while too
    few nodes are there; nothing waits on the wall clock."""
    from flwr.server.client_manager import SimpleClientManager
    from flwr.serverapp.strategy import strategy_utils

    def wait_for(self: SimpleClientManager, num_clients: int, timeout: int = 86400) -> bool:
        while self.num_available() < num_clients:  # asks the grid, in Flower's compat layer
            grid.wait()  # stops the run after a week of virtual time
        return True

    names = vars(strategy_utils)  # the module's `from time import sleep`
    sleep, original_wait = names["sleep"], SimpleClientManager.wait_for
    names["sleep"] = lambda _s: grid.wait()
    SimpleClientManager.wait_for = wait_for  # type: ignore[method-assign]
    try:
        yield
    finally:
        names["sleep"] = sleep
        SimpleClientManager.wait_for = original_wait  # type: ignore[method-assign]


@contextmanager
def _capturing(into: list[Result], legacy: list[Any]) -> Iterator[None]:
    """Keep what `Strategy.start` returns (the per-round metrics), and each LegacyContext
    the app makes (its history holds them), without changing either."""
    from flwr.server.compat.legacy_context import LegacyContext

    original = Strategy.start
    original_init = LegacyContext.__init__

    def init(self: LegacyContext, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        legacy.append(self)

    def start(self: Strategy, *args: Any, **kwargs: Any) -> Result:
        result = original(self, *args, **kwargs)
        into.append(result)
        return result

    Strategy.start = start  # type: ignore[method-assign]
    LegacyContext.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        Strategy.start = original  # type: ignore[method-assign]
        LegacyContext.__init__ = original_init  # type: ignore[method-assign]
