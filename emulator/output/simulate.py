"""One simulation run end to end: scenario in, run folder out.

The run folder holds summary.json, rounds.csv, client_sessions.csv (or, with
`table_format="parquet"`, rounds.parquet and client_sessions.parquet),
scenario.resolved.yaml (the scenario as it ran: every default, the seed, and under
`run:` the version and the profiles' hashes; it runs again as it is), inputs/ (copies
of the files the scenario names), run.json (wall time, the engine's time with the
fleet's build in it, and the host: the only file that differs between two runs of the
same seed), the plots and report.md.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgetwin.common.errors import InputError
from edgetwin.common.version import package_version
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.engine import Engine, ProgressFn, Results
from edgetwin.emulator.observer import Observer
from edgetwin.emulator.output.files import summary, write_summary
from edgetwin.emulator.output.inputs import named_files, pin_inputs
from edgetwin.emulator.output.plots import write_plots
from edgetwin.emulator.output.report import write_report
from edgetwin.emulator.output.staging import check_out, discard, staging_folder, swap_in
from edgetwin.emulator.output.tables import Format, write_tables
from edgetwin.emulator.scenario import resolved


class Driver(Protocol):
    """What runs the fleet in place of the scenario's own rounds (a Flower app), and the
    files it adds to the run folder."""

    def run(self, engine: Engine) -> Results: ...

    def write(self, out: Path, results: Results) -> list[str]:
        """Its own files in `out`: lines for report.md."""


@dataclass
class RunOutput:
    results: Results
    summary: dict[str, Any]
    folder: Path
    wall_s: float


def simulate(scenario: Scenario, out: Path, *, plots: bool = True, overwrite: bool = False,
             progress: ProgressFn | None = None, observer: Observer | None = None,
             warn: Callable[[str], None] | None = None,
             driver: Driver | None = None, table_format: Format = "csv") -> RunOutput:
    """Run `scenario` into the folder `out`, which must be new or empty unless `overwrite`
    (then an earlier run there is replaced once the new one is written). The files the
    scenario names are copied in first and the run reads the copies, so that the folder's
    scenario.resolved.yaml runs again as it is. `observer` watches the run (periodic
    validation on attached devices is one); a scenario with a validation section needs
    it. `warn` hears each warning (the scenario's, a group that cannot fit in memory)
    once the fleet is built, before the run starts. `driver` runs the fleet in place of
    the scenario's rounds; `table_format` writes rounds and client_sessions as CSV (the
    default) or Parquet."""
    if scenario.validation is not None and observer is None:
        raise InputError(scenario.source or "scenario", "validation", "needs the attached "
                         "devices of validation.devices, which the edgetwin command connects")
    base = Path(scenario.source).parent if scenario.source else Path(".")
    sources = [Path(scenario.source)] if scenario.source else []
    check_out(out, overwrite, [*sources, *named_files(scenario, base)])
    stage = staging_folder(out)
    try:
        run = _simulate_into(scenario, base, stage, plots, progress, observer, warn, driver,
                             table_format)
        swap_in(stage, out)
    except BaseException:
        discard(stage)
        raise
    return dataclasses.replace(run, folder=out)


def _simulate_into(scenario: Scenario, base: Path, out: Path, plots: bool,
                   progress: ProgressFn | None, observer: Observer | None,
                   warn: Callable[[str], None] | None, driver: Driver | None,
                   table_format: Format) -> RunOutput:
    t0 = time.perf_counter()
    seed = scenario.seed if scenario.seed is not None else secrets.randbits(32)
    sources: dict[str, str] = {}
    pinned = pin_inputs(dataclasses.replace(scenario, seed=seed), base, out, sources)
    t_build = time.perf_counter()
    try:
        engine = Engine(pinned, out, seed, progress, observer)
    except InputError as err:  # a bad file the scenario names: name the user's, not the copy
        if err.where not in sources:
            raise
        raise InputError(sources[err.where], err.key, err.problem) from None
    shown = _warn(warn, engine.warnings, 0)
    t_run = time.perf_counter()
    results = engine.run() if driver is None else driver.run(engine)
    t_done = time.perf_counter()
    _warn(warn, engine.warnings, shown)  # those the run itself found
    extra = observer.finish(out) if observer is not None else {}
    hashes = {g.profile: p.sha256 for g, p in zip(pinned.fleet.groups, results.fleet.profiles,
                                                  strict=True)}
    version = package_version()
    data = summary(results, version, hashes)
    (out / "scenario.resolved.yaml").write_text(resolved(
        pinned, {"edgetwin_version": version, "profiles_sha256": hashes, **extra}))
    write_summary(data, out / "summary.json")
    write_tables(results, out, table_format)
    names = write_plots(results, out) if plots else []
    extra_lines = driver.write(out, results) if driver is not None else []
    write_report(data, names, out / "report.md", extra_lines)
    wall = time.perf_counter() - t0
    (out / "run.json").write_text(json.dumps({
        "wall_s": round(wall, 3), "build_s": round(t_run - t_build, 3),
        "engine_s": round(t_done - t_build, 3), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(), "python": platform.python_version(),
        "scenario": str(Path(scenario.source).resolve()) if scenario.source else "",
        "edgetwin_version": version, "seed": seed,
        "sessions_per_wall_s": round(data["client_sessions"] / wall, 1)}, indent=2) + "\n")
    return RunOutput(results, data, out, wall)


def _warn(warn: Callable[[str], None] | None, warnings: tuple[str, ...], shown: int) -> int:
    """Tell `warn` the warnings from number `shown` on; how many there are now."""
    if warn is not None:
        for line in warnings[shown:]:
            warn(line)
    return len(warnings)
