"""A run folder read back: its scenario, seed and base folder, and the run itself
simulated again, checked to give the same sessions (byte for byte for a CSV, column
for column for a Parquet file).

Replay needs what the folder's CSV files do not keep (each session's uninterrupted
plan, the random state of each selection): the run is deterministic, so it is
simulated again with an observer, and trusted only if it reproduces the folder.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgetwin.common.errors import InputError
from edgetwin.common.files import looks_whole
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.engine import Engine, Results
from edgetwin.emulator.observer import Observer
from edgetwin.emulator.output.files import write_sessions_csv
from edgetwin.emulator.output.tables import SESSIONS, table_file
from edgetwin.emulator.scenario import RUN_KEY, load_scenario
from edgetwin.profiles.schema import load_yaml


@dataclass(frozen=True)
class RunFolder:
    path: Path
    scenario: Scenario
    seed: int
    base: Path  # the folder the scenario's file names are relative to
    profiles_sha256: dict[str, str]


def load_run(run_dir: Path) -> RunFolder:
    resolved = run_dir / "scenario.resolved.yaml"
    if not resolved.is_file():
        raise InputError(str(run_dir), "", "not a run folder (no scenario.resolved.yaml)")
    raw = load_yaml(resolved)
    record = raw.get(RUN_KEY) if isinstance(raw, dict) else None
    if not isinstance(record, dict):
        raise InputError(str(resolved), RUN_KEY, "missing: written by an older edgetwin; "
                         "simulate the scenario again")
    scenario = load_scenario(resolved)
    if scenario.seed is None:
        raise InputError(str(resolved), "seed", "missing: a run folder records its seed")
    return RunFolder(run_dir, scenario, scenario.seed, run_dir,
                     dict(record.get("profiles_sha256") or {}))


def rerun(run: RunFolder, observer: Observer) -> tuple[Engine, Results]:
    """The run simulated again with `observer`; refused unless it reproduces the
    folder's client_sessions.csv exactly. The engine is returned for its session model."""
    engine = Engine(run.scenario, run.base, run.seed, observer=observer)
    results = engine.run()
    changed = [g.profile for g, p in zip(results.fleet.groups, results.fleet.profiles,
                                         strict=True)
               if run.profiles_sha256.get(g.profile, p.sha256) != p.sha256]
    if changed:
        raise InputError(str(run.path), "profiles_sha256", f"profile {changed[0]!r} changed "
                         "since the run: simulate it again before replaying it")
    recorded = table_file(run.path, SESSIONS)
    if not recorded.is_file():
        raise InputError(str(recorded), "", "missing: the run folder is not whole; simulate "
                         "the scenario again")
    if recorded.suffix == ".csv" and not looks_whole(recorded):
        raise InputError(str(recorded), "", "cut short (it does not end where a line ends): "
                         "the run folder is damaged; simulate the scenario again")
    with tempfile.TemporaryDirectory() as tmp:
        again = Path(tmp) / recorded.name
        if recorded.suffix == ".parquet":
            from edgetwin.emulator.output.parquet import read_parquet, write_sessions_parquet

            write_sessions_parquet(results, again)
            same = _same_columns(read_parquet(again), read_parquet(recorded))
        else:
            write_sessions_csv(results, again)
            same = _sha(again) == _sha(recorded)
        if not same:
            raise InputError(str(recorded), "", "the emulator no longer reproduces this run "
                             "(edgetwin or a file the scenario names changed): simulate it "
                             "again before replaying it")
    return engine, results


def _same_columns(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def same(x: Any, y: Any) -> bool:
        numeric = x.dtype.kind in "fiub" and y.dtype.kind in "fiub"
        return bool(np.array_equal(x, y, equal_nan=numeric and x.dtype.kind == "f"))

    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
