"""One simulation run end to end: scenario in, run folder out.

The run folder holds summary.json, rounds.csv, client_sessions.csv,
scenario.resolved.yaml (every default, the seed, the version, the profiles'
hashes), run.json (wall time, the engine's time with the fleet's build in it, and
the host: the only file that differs between two runs of the same seed), the plots
and report.md.
"""

from __future__ import annotations

import json
import platform
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.config import Scenario
from emulator.engine import Engine, ProgressFn, Results
from emulator.metrics import summary, write_rounds_csv, write_sessions_csv, write_summary
from emulator.observer import Observer
from emulator.report import write_plots, write_report
from emulator.scenario import resolved
from profiles.errors import InputError
from profiles.version import package_version


@dataclass
class RunOutput:
    results: Results
    summary: dict[str, Any]
    folder: Path
    wall_s: float


def simulate(scenario: Scenario, out: Path, *, plots: bool = True,
             progress: ProgressFn | None = None, observer: Observer | None = None) -> RunOutput:
    """Run `scenario` into the folder `out`. `observer` watches the run (periodic
    validation on attached devices is one); a scenario with a validation section
    needs it."""
    if scenario.validation is not None and observer is None:
        raise InputError(scenario.source or "scenario", "validation", "needs the attached "
                         "devices of validation.devices, which the edgetwin command connects")
    t0 = time.perf_counter()
    seed = scenario.seed if scenario.seed is not None else secrets.randbits(32)
    base = Path(scenario.source).parent if scenario.source else Path(".")
    t_build = time.perf_counter()
    engine = Engine(scenario, base, seed, progress, observer)
    t_run = time.perf_counter()
    results = engine.run()
    t_done = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    extra = observer.finish(out) if observer is not None else {}
    hashes = {g.profile: p.sha256 for g, p in zip(results.fleet.groups, results.fleet.profiles,
                                                  strict=True)}
    version = package_version()
    data = summary(results, version, hashes)
    (out / "scenario.resolved.yaml").write_text(resolved(
        scenario, {"seed": seed, "edgetwin_version": version, "profiles_sha256": hashes,
                   **extra}))
    write_summary(data, out / "summary.json")
    write_rounds_csv(results, out / "rounds.csv")
    write_sessions_csv(results, out / "client_sessions.csv")
    names = write_plots(results, out) if plots else []
    write_report(data, names, out / "report.md")
    wall = time.perf_counter() - t0
    (out / "run.json").write_text(json.dumps({
        "wall_s": round(wall, 3), "build_s": round(t_run - t_build, 3),
        "engine_s": round(t_done - t_build, 3), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(), "python": platform.python_version(),
        "scenario_dir": str(base.resolve()),
        "edgetwin_version": version, "seed": seed,
        "sessions_per_wall_s": round(data["client_sessions"] / wall, 1)}, indent=2) + "\n")
    return RunOutput(results, data, out, wall)
