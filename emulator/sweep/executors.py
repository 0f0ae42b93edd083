"""Where a sweep's runs execute: in this process, in a pool of worker processes (all
cores by default), or as Ray tasks on a cluster. Each takes jobs while it has free
slots and hands back outcomes as runs finish; a worker that dies costs only the runs it
held, which come back as lost (the sweep retries them)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

from edgetwin.common.errors import InputError
from edgetwin.common.spawn import without_main_script
from edgetwin.emulator.sweep.jobs import Job, Outcome, run_job, run_shipped, ship, write_back

LOST = "its worker process died (killed, or out of memory)"


class Executor(Protocol):
    slots: int  # runs it can hold at once
    name: str  # for the report

    def running(self) -> int: ...

    def start(self, job: Job) -> None: ...

    def wait(self, timeout_s: float) -> list[Outcome]:
        """The outcomes of runs that finished (waits up to `timeout_s` for one)."""

    def close(self) -> None:
        """Stop now: runs still held are abandoned, their workers stopped."""


class InThisProcess:
    """One run at a time, in the sweep's own process."""

    slots = 1
    name = "this process"

    def __init__(self) -> None:
        self.queue: deque[Job] = deque()

    def running(self) -> int:
        return len(self.queue)

    def start(self, job: Job) -> None:
        self.queue.append(job)

    def wait(self, timeout_s: float) -> list[Outcome]:
        return [run_job(self.queue.popleft())] if self.queue else []

    def close(self) -> None:
        self.queue.clear()


def _worker_init() -> None:
    """A worker leaves Ctrl-C to the sweep (which stops it) and keeps its math libraries
    and its CSV writer to one thread (the workers are the parallelism). One that cannot
    start says why in one line and ends (the sweep then says the pool cannot start)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        from edgetwin.emulator.output import fastcsv

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threadpool_limits(1)
        fastcsv.WORKERS = 1
    except Exception as err:
        print(f"edgetwin: a sweep worker could not start: {type(err).__name__}: {err}",
              file=sys.stderr, flush=True)
        os._exit(1)


class Pool:
    """`workers` processes on this machine, each one run at a time."""

    def __init__(self, workers: int) -> None:
        self.slots = workers
        self.name = f"{workers} worker processes"
        self.pool: ProcessPoolExecutor | None = None
        self.held: dict[Future[Outcome], Job] = {}

    def running(self) -> int:
        return len(self.held)

    def start(self, job: Job) -> None:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context(
                "spawn"), initializer=_worker_init)
        with without_main_script():  # a worker spawns here: not from the caller's script
            self.held[self.pool.submit(run_job, job)] = job

    def wait(self, timeout_s: float) -> list[Outcome]:
        done, _ = wait(list(self.held), timeout=timeout_s, return_when=FIRST_COMPLETED)
        out: list[Outcome] = []
        broken = False
        together = len(self.held)  # the runs the pool held when one finished or broke
        for fut in done:
            job = self.held.pop(fut)
            try:
                out.append(fut.result())
            except BrokenProcessPool:
                broken = True
                out.append(Outcome(job.run_id, False, LOST, lost=True, alone=together == 1))
            except Exception as err:
                out.append(Outcome(job.run_id, False, f"{type(err).__name__}: {err}"))
        if broken:  # the pool is gone, and with it every run it held
            out += [Outcome(job.run_id, False, LOST, lost=True, alone=together == 1)
                    for job in self.held.values()]
            self.held.clear()
            self._stop()
        return out

    def close(self) -> None:
        self.held.clear()
        self._stop()

    def _stop(self) -> None:
        """Shut the pool down and stop its workers mid-run (only its own processes)."""
        if self.pool is None:
            return
        workers = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.join(timeout=5)
        self.pool = None


class OnRay:
    """Runs as Ray tasks on the cluster at `address` (`auto`: this machine's, or a new
    local one). A task takes the files its scenario reads and gives back its run folder
    as bytes, so the cluster's machines need edgetwin installed, not this folder."""

    def __init__(self, address: str) -> None:
        import ray

        from edgetwin.emulator.raycluster import connect

        self.ray = ray
        self.started = connect(address)
        cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        self.slots = max(1, int(cpus))
        self.name = f"Ray ({self.slots} CPUs)"
        self.remote: Any = ray.remote(num_cpus=1, max_retries=0)(run_shipped)
        self.scratch = Path(tempfile.mkdtemp(prefix="edgetwin-ship-"))
        self.held: dict[Any, Job] = {}

    def running(self) -> int:
        return len(self.held)

    def start(self, job: Job) -> None:
        self.held[self.remote.remote(ship(job, self.scratch))] = job

    def wait(self, timeout_s: float) -> list[Outcome]:
        ready, _ = self.ray.wait(list(self.held), num_returns=1, timeout=timeout_s)
        out = []
        for ref in ready:
            job = self.held.pop(ref)
            try:
                outcome, files = self.ray.get(ref)
            except self.ray.exceptions.RayError as err:
                errors = self.ray.exceptions
                lost = isinstance(err, errors.WorkerCrashedError | errors.NodeDiedError |
                                  getattr(errors, "OutOfMemoryError", errors.WorkerCrashedError))
                line = str(err).strip().splitlines()[0] if str(err).strip() else ""
                out.append(Outcome(job.run_id, False, LOST if lost else
                                   f"{type(err).__name__}: {line}", lost=lost))
                continue
            if outcome.ok:
                write_back(files, job.folder)
            out.append(outcome)
        return out

    def close(self) -> None:
        for ref in self.held:
            self.ray.cancel(ref, force=True)
        self.held.clear()
        if self.started:
            self.ray.shutdown()
        shutil.rmtree(self.scratch, ignore_errors=True)


def executor_for(workers: int, ray_address: str | None) -> Executor:
    """Ray where an address is given, else `workers` processes (1: this process)."""
    if ray_address:
        return OnRay(ray_address)
    if workers <= 1:
        return InThisProcess()
    try:  # what a worker imports as it starts, tried here: one line, not N dead workers
        import threadpoolctl  # noqa: F401
    except Exception as err:
        raise InputError("--workers", str(workers), f"a worker process cannot start here "
                         f"({type(err).__name__}: {err}): --workers 1 runs in this "
                         "process") from None
    return Pool(workers)
