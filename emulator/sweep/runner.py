"""A sweep's plan run into its folder: runs already finished there are kept, the others
run on an executor, a failed run is recorded with its error line and the rest go on.
Interrupted (Ctrl-C, a killed worker, a lost machine), the same command carries on: a
run is written whole or not at all, under `runs/<run id>`.

The folder holds sweep.yaml (the sweep as it ran), runs/ (one run folder per run, as
`edgetwin simulate` writes it), sweep.csv, sweep.md and the plots.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from emulator.outfolder import RUN_MARKERS
from emulator.sweep.executors import Executor
from emulator.sweep.jobs import Job
from emulator.sweep.plan import Plan, Run
from profiles.errors import InputError
from profiles.schema import dump_yaml

RECORD = "sweep.yaml"
RUNS = "runs"
LOCK = ".sweep.lock"
MAX_ATTEMPTS = 2  # a run whose worker dies twice is recorded as failed
POLL_S = 0.25

# done, running, failed, to do (this invocation's runs only)
ProgressFn = Callable[[int, int, int, int], None]


@dataclass
class SweepRun:
    plan: Plan
    folder: Path
    results: dict[str, tuple[str, str]]  # run id -> (status, error line), finished or failed
    kept: int  # finished before this invocation
    computed: int
    failed: int
    interrupted: bool
    executor: str
    wall_s: float
    others: int  # run folders in runs/ that belong to no run of this plan

    @property
    def not_run(self) -> int:
        return len(self.plan.runs) - len(self.results)


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
        results = {r.run_id: ("ok", "") for r in plan.runs if finished(runs_dir / r.run_id)}
        kept = len(results)
        todo = deque(r for r in plan.runs if r.run_id not in results)
        computed = failed = 0
        interrupted = False
        name = "nothing to run"
        attempts: dict[str, int] = {}
        if todo:
            ex = executor()
            name = ex.name
            total = len(todo)
            by_id = {r.run_id: r for r in todo}
            try:
                while todo or ex.running():
                    while todo and ex.running() < ex.slots:
                        ex.start(_job(todo.popleft(), runs_dir, plots))
                    for out in ex.wait(POLL_S):
                        attempts[out.run_id] = attempts.get(out.run_id, 0) + 1
                        if out.lost and attempts[out.run_id] < MAX_ATTEMPTS:
                            todo.appendleft(by_id[out.run_id])
                            continue
                        results[out.run_id] = ("ok", "") if out.ok else ("failed", out.error)
                        computed += out.ok
                        failed += not out.ok
                    if progress is not None:
                        progress(computed, ex.running(), failed, total)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                ex.close()
                _clear_leftovers(runs_dir)
    others = sum(1 for p in runs_dir.iterdir() if p.is_dir()) - sum(
        1 for r in plan.runs if (runs_dir / r.run_id).is_dir())
    return SweepRun(plan, folder, results, kept, computed, failed, interrupted, name,
                    time.perf_counter() - t0, others)


def _job(run: Run, runs_dir: Path, plots: bool) -> Job:
    return Job(run.run_id, run.scenario, runs_dir / run.run_id, plots, run.app)


def finished(run_folder: Path) -> bool:
    """A run folder appears whole (it is renamed into place once written)."""
    return all((run_folder / name).is_file() for name in (*RUN_MARKERS, "summary.json"))


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
    """One sweep at a time writes a folder (a lock left by a process that died is taken)."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = _pid_in(lock)
            if pid is not None and pid != os.getpid() and _alive(pid):
                raise InputError(str(folder), "--out", f"another sweep (process {pid}) is "
                                 "writing this folder") from None
            lock.unlink(missing_ok=True)
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _pid_in(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
