"""A sweep's plan run into its folder: runs already finished there are kept, the others
run on an executor, a failed run is recorded with its error line and the rest go on.
Interrupted (Ctrl-C, a killed worker, a lost machine), the same command carries on: a
run is written whole or not at all, under `runs/<run id>`.

The folder holds sweep.yaml (the sweep as it ran), runs/ (one run folder per run, as
`edgetwin simulate` writes it), sweep.csv, sweep.md and the plots.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgetwin.common.errors import InputError
from edgetwin.common.files import looks_whole, read_json_object
from edgetwin.emulator.output.staging import RUN_MARKERS
from edgetwin.emulator.sweep.executors import Executor
from edgetwin.emulator.sweep.jobs import Job
from edgetwin.emulator.sweep.plan import Plan, Run
from edgetwin.profiles.schema import dump_yaml

RECORD = "sweep.yaml"
RUNS = "runs"
LOCK = ".sweep.lock"
MAX_ATTEMPTS = 2  # a run whose worker dies twice while it runs alone is recorded as failed
POLL_S = 0.25

# done, running, failed, to do (this invocation's runs only)
ProgressFn = Callable[[int, int, int, int], None]


@dataclass
class SweepRun:
    plan: Plan
    folder: Path
    statuses: dict[str, tuple[str, str]]  # run id -> (status, error line), finished or failed
    kept: int  # finished before this invocation
    computed: int
    failed: int
    interrupted: bool
    executor: str
    wall_s: float
    others: int  # run folders in runs/ that belong to no run of this plan
    damaged: list[str] = field(default_factory=list)  # run folders not whole: run again

    @property
    def not_run(self) -> int:
        return len(self.plan.runs) - len(self.statuses)


def run_sweep(plan: Plan, folder: Path, executor: Callable[[], Executor], *,
              plots: bool = False, progress: ProgressFn | None = None) -> SweepRun:
    """Run every run of `plan` not yet finished in `folder`; `executor` is made only if
    there is something to run."""
    t0 = time.perf_counter()
    check_folder(folder)
    runs_dir = folder / RUNS
    with _locked(folder):
        runs_dir.mkdir(parents=True, exist_ok=True)
        _clear_leftovers(runs_dir)
        (folder / RECORD).write_text(_record(plan))
        statuses = {r.run_id: ("ok", "") for r in plan.runs if finished(runs_dir / r.run_id)}
        kept = len(statuses)
        damaged = [r.run_id for r in plan.runs
                   if r.run_id not in statuses and (runs_dir / r.run_id).is_dir()]
        todo = [r for r in plan.runs if r.run_id not in statuses]
        name, computed, failed, interrupted = "nothing to run", 0, 0, False
        if todo:
            ex = executor()
            name = ex.name
            try:
                computed, failed = _run_all(ex, todo, runs_dir, plots, statuses, progress)
            except KeyboardInterrupt:
                interrupted = True
                computed = sum(1 for r in todo if statuses.get(r.run_id, ("",))[0] == "ok")
                failed = sum(1 for r in todo if statuses.get(r.run_id, ("",))[0] == "failed")
            finally:
                ex.close()
                _clear_leftovers(runs_dir)
    others = sum(1 for p in runs_dir.iterdir() if p.is_dir()) - sum(
        1 for r in plan.runs if (runs_dir / r.run_id).is_dir())
    return SweepRun(plan, folder, statuses, kept, computed, failed, interrupted, name,
                    time.perf_counter() - t0, others, damaged)


def _run_all(ex: Executor, todo: list[Run], runs_dir: Path, plots: bool,
             statuses: dict[str, tuple[str, str]], progress: ProgressFn | None
             ) -> tuple[int, int]:
    """Keep the executor's slots full until every run has an outcome. Runs lost with a
    worker that held others too run again, alone, so that only the run that kills its
    worker is charged for it; a run lost alone MAX_ATTEMPTS times is recorded as failed."""
    queue, alone = deque(todo), deque[Run]()
    by_id = {r.run_id: r for r in todo}
    losses: dict[str, int] = {}
    computed = failed = 0
    finished_any = False  # a worker that finished a run: the pool can start
    while queue or alone or ex.running():
        if alone:  # one suspect at a time, with nothing beside it
            if not ex.running():
                ex.start(_job(alone.popleft(), runs_dir, plots))
        else:
            while queue and ex.running() < ex.slots:
                ex.start(_job(queue.popleft(), runs_dir, plots))
        for out in ex.wait(POLL_S):
            if out.lost:
                if out.alone:
                    losses[out.run_id] = losses.get(out.run_id, 0) + 1
                if losses.get(out.run_id, 0) < MAX_ATTEMPTS:
                    alone.append(by_id[out.run_id])
                    continue
                if not finished_any:  # every worker died before finishing any run
                    raise InputError("--workers", str(ex.slots), f"the {ex.name} die before "
                                     "finishing any run (their line above says why, where "
                                     "they could say it): --workers 1 runs in this process")
            finished_any = True
            statuses[out.run_id] = ("ok", "") if out.ok else ("failed", out.error)
            computed += out.ok
            failed += not out.ok
        if progress is not None:
            progress(computed, ex.running(), failed, len(todo))
    return computed, failed


def _job(run: Run, runs_dir: Path, plots: bool) -> Job:
    return Job(run.run_id, run.scenario, runs_dir / run.run_id, plots, run.app)


def finished(run_folder: Path) -> bool:
    """A run folder is whole (it is renamed into place once written) and its run was not
    cut short by Ctrl-C."""
    if not all((run_folder / name).is_file() for name in (*RUN_MARKERS, "summary.json")):
        return False
    try:
        summary = read_json_object(run_folder / "summary.json", ("stop_reason",))
    except InputError:  # damaged since: run again
        return False
    whole = all(looks_whole(run_folder / name) for name in ("rounds.csv", "client_sessions.csv"))
    return whole and summary["stop_reason"] != "interrupted"


def check_folder(folder: Path) -> None:
    """A sweep writes into a new or empty folder, or one that holds a sweep."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise InputError(str(folder), "--out", "exists and is not a folder")
    if any(folder.iterdir()) and not (folder / RECORD).is_file() and \
            not (folder / RUNS).is_dir():
        raise InputError(str(folder), "--out", "is not empty and holds no sweep: choose "
                         "another folder")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One sweep at a time writes a folder: an exclusive lock on `.sweep.lock`, which the
    system lets go when the process ends, however it ends."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK).open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise InputError(str(folder), "--out", f"another sweep (process {holder}) is "
                             "writing this folder") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _clear_leftovers(runs_dir: Path) -> None:
    """Runs that were being written when their process stopped (`.<id>.writing-<pid>`)."""
    for path in runs_dir.glob(".*.writing-*"):
        shutil.rmtree(path, ignore_errors=True)


def _record(plan: Plan) -> str:
    s = plan.spec
    data = {
        "name": plan.name, "scenario": str(s.scenario.resolve()),
        "grid": {a.key: list(a.values) for a in s.axes}, "seeds": list(plan.seeds),
        "set": {k: v for k, v, _ in s.fixed} or None,
        "metrics": list(s.metrics) or None, "target_rounds": plan.target_rounds,
        "app": str(s.app.resolve()) if s.app else None, "run_config": s.run_config,
        "out": ".",
    }
    data = {k: v for k, v in data.items() if v is not None}
    text = dump_yaml(data, width=100)
    return f"# the sweep as it ran; `edgetwin sweep {RECORD}` runs it again\n{text}"
