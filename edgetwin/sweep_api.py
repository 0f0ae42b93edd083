"""`edgetwin.sweep` and `edgetwin.load_sweep`: a sweep as `edgetwin sweep` runs it, its
results as Python values (each setting's seeds per metric, means with intervals, and
two settings compared seed by seed)."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from edgetwin.common.errors import InputError
from edgetwin.emulator.sweep.results import SettingResult, find, load_folder
from edgetwin.emulator.sweep.stats import Difference, Estimate, difference
from edgetwin.emulator.sweep.table import TAIL

__all__ = ["Sweep", "load_sweep", "sweep"]


@dataclass(frozen=True, eq=False)
class Sweep:
    """A sweep's folder and what it holds: sweep.csv's rows (numbers as floats) and the
    settings, each with its metrics per seed."""

    folder: Path
    keys: list[str]  # the swept keys, in the grid's order
    rows: list[dict[str, Any]]

    @cached_property
    def settings(self) -> list[SettingResult]:
        """Per setting (numbered as in sweep.md): its swept values and every metric by seed."""
        return load_folder(self.folder, "load_sweep")[2]

    def setting(self, which: int | str) -> SettingResult:
        """A setting by its number, or by `"key=value[,key=value]"`."""
        return find(self.settings, str(which), "setting")

    def estimate(self, which: int | str, metric: str) -> Estimate:
        """The mean of `metric` over the setting's seeds, with its 95 % interval."""
        return self.setting(which).estimate(metric)

    def compare(self, a: int | str, b: int | str, metric: str) -> Difference:
        """B minus A for `metric`, with its 95 % interval (paired by seed where both ran
        the same seeds)."""
        sa, sb = self.setting(a), self.setting(b)
        if metric not in sa.by_seed:
            raise InputError("compare", metric, "not a metric of sweep.csv")
        return difference(sa.by_seed[metric], sb.by_seed[metric])

    def to_pandas(self) -> Any:
        """sweep.csv as a pandas DataFrame, one row per run (numbers as numbers, an
        empty cell as NaN). Needs pandas: pip install 'edgetwin[analysis]'."""
        from edgetwin.run_api import pandas_module

        return pandas_module().DataFrame(self.rows)

    def __repr__(self) -> str:
        failed = sum(1 for r in self.rows if r["status"] != "ok")
        return (f"Sweep({str(self.folder)!r}: {len(self.settings)} settings over "
                f"{', '.join(self.keys)}; {len(self.rows)} runs, {failed} failed)")


def sweep(scenario: str | Path, grid: Mapping[str, Sequence[Any]], *,
          seeds: int | Sequence[int] | None = None,
          overrides: Mapping[str, Any] | None = None, out: str | Path | None = None,
          workers: int = 1, ray: str | None = None, metrics: Sequence[str] = (),
          target_rounds: int | None = None, app: str | Path | None = None,
          run_config: str | None = None, plots: bool = False) -> Sweep:
    """Run `scenario` for every combination of `grid`'s values (dotted key -> values) and
    every seed, as `edgetwin sweep` does, into `out` (None: a new temporary folder); runs
    already in `out` are kept. `workers` processes (1: this one) or Ray at `ray`."""
    from edgetwin.emulator.sweep.executors import executor_for
    from edgetwin.emulator.sweep.outputs import write_outputs
    from edgetwin.emulator.sweep.plan import plan
    from edgetwin.emulator.sweep.runner import run_sweep
    from edgetwin.emulator.sweep.spec import Axis, SweepSpec, check_axes, check_seeds

    if isinstance(grid, str) or not isinstance(grid, Mapping) or not grid:
        raise InputError("sweep", "grid", "expected a mapping of dotted keys to lists of values")
    axes = []
    for key, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise InputError("grid", key, "expected a list of values")
        axes.append(Axis(key, tuple(values)))
    if seeds is not None:
        seeds = check_seeds(seeds if isinstance(seeds, int) else list(seeds), "sweep", "seeds")
    spec = SweepSpec(Path(scenario), check_axes(axes, "grid"), seeds,
                     tuple((k, v, "overrides") for k, v in (overrides or {}).items()),
                     tuple(metrics), target_rounds, None,
                     Path(app) if app is not None else None, run_config, where="grid")
    the_plan = plan(spec)
    folder = Path(out) if out is not None else \
        Path(tempfile.mkdtemp(prefix=f"edgetwin-{the_plan.name}-"))
    run = run_sweep(the_plan, folder, lambda: executor_for(workers, ray), plots=plots)
    write_outputs(run, quiet=True)
    if run.interrupted:
        raise KeyboardInterrupt
    return load_sweep(folder)


def load_sweep(folder: str | Path) -> Sweep:
    """A sweep's folder, read back (its sweep.csv)."""
    path = Path(folder)
    keys, rows, _ = load_folder(path, "load_sweep")
    text_columns = (*keys, *TAIL[:3], "run")  # stop reason, status, error
    return Sweep(path, keys, [{k: v if k in text_columns else _number(v)
                               for k, v in row.items()} for row in rows])


def _number(text: str) -> Any:
    if text == "":
        return math.nan
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
