"""One run of a sweep as a job: run where the sweep's folder is (a local worker), or
shipped with the files it reads to a machine that may not see that folder (a Ray task),
whose run folder comes back as bytes."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgetwin.common.errors import InputError
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.output.inputs import pin_inputs
from edgetwin.emulator.output.staging import discard, staging_folder, swap_in
from edgetwin.emulator.sweep.plan import code_digest

if TYPE_CHECKING:
    from edgetwin.emulator.flower.app import FlowerApp
    from edgetwin.emulator.output.simulate import Driver

SCENARIO_NAME = "scenario.yaml"  # a shipped scenario's name in its job folder
APP_FOLDER = "app"  # a shipped app's folder in its job folder
Files = dict[str, bytes]  # a folder's files by their path in it


@dataclass(frozen=True)
class Job:
    run_id: str
    scenario: Scenario
    folder: Path  # the run folder to write
    plots: bool
    app: FlowerApp | None = None


@dataclass(frozen=True)
class Outcome:
    run_id: str
    ok: bool
    error: str = ""  # one line, for a failed run
    lost: bool = False  # the worker died before it answered
    alone: bool = True  # ... and it held no other run, so this one killed it


def run_job(job: Job) -> Outcome:
    """Run `job` into its folder: a failure is an outcome with its one line, never an
    exception (the sweep goes on); an interrupted run leaves no folder behind."""
    from edgetwin.emulator.output.simulate import simulate

    try:
        run = simulate(job.scenario, job.folder, plots=job.plots, overwrite=True,
                       driver=_driver(job.app))
    except InputError as err:
        return Outcome(job.run_id, False, str(err))
    except Exception as err:  # recorded as the run's error line, and the sweep goes on
        line = str(err).splitlines()[0] if str(err) else ""
        return Outcome(job.run_id, False, f"{type(err).__name__}: {line}".rstrip(": "))
    if run.results.stop_reason == "interrupted":  # Ctrl-C reached the engine: not a result
        shutil.rmtree(job.folder, ignore_errors=True)
        raise KeyboardInterrupt
    return Outcome(job.run_id, True)


def _driver(app: FlowerApp | None) -> Driver | None:
    """A Flower app's driver, its ClientApps run in the worker itself (the sweep's
    workers are the parallelism)."""
    if app is None:
        return None
    from edgetwin.emulator.flower.run import AppDriver
    from edgetwin.emulator.flower.workers import InProcess

    return AppDriver(app, InProcess(app))


@dataclass(frozen=True)
class ShippedJob:
    """A job with the files it reads: its scenario names them relative to its folder."""

    job: Job
    files: Files
    code: str  # the sweep's code digest: a node with other code must not run it


def ship(job: Job, scratch: Path) -> ShippedJob:
    """`job` with copies of the files its scenario names (and its app's folder)."""
    here = scratch / job.run_id
    base = Path(job.scenario.source).parent if job.scenario.source else Path(".")
    pinned = pin_inputs(job.scenario, base, here)
    app = job.app
    if app is not None:
        shutil.copytree(app.folder, here / APP_FOLDER,
                        ignore=shutil.ignore_patterns("__pycache__", ".git"))
    files = pack(here) if here.exists() else {}
    shutil.rmtree(here, ignore_errors=True)
    return ShippedJob(dataclasses.replace(job, scenario=pinned), files, code_digest())


def run_shipped(shipped: ShippedJob) -> tuple[Outcome, Files]:
    """Run a shipped job in a folder of its own; its run folder comes back as bytes."""
    job = shipped.job
    if code_digest() != shipped.code:
        return Outcome(job.run_id, False, "this Ray node runs other edgetwin code than the "
                       "sweep's (install the same version on every node)"), {}
    with tempfile.TemporaryDirectory(prefix="edgetwin-sweep-") as tmp:
        here = Path(tmp)
        unpack(shipped.files, here)
        app = job.app
        if app is not None:
            app = dataclasses.replace(app, folder=here / APP_FOLDER)
        local = dataclasses.replace(
            job, folder=here / "run", app=app,
            scenario=dataclasses.replace(job.scenario, source=str(here / SCENARIO_NAME)))
        outcome = run_job(local)
        return outcome, pack(local.folder) if outcome.ok else {}


def write_back(files: Files, folder: Path) -> None:
    """A run folder that came back as bytes, written and swapped in whole."""
    stage = staging_folder(folder)
    try:
        unpack(files, stage)
        swap_in(stage, folder)
    except BaseException:
        discard(stage)
        raise


def pack(folder: Path) -> Files:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def unpack(files: Files, folder: Path) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
