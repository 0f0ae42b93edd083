"""Where the ClientApps of the nodes that report back run for real: in this process, in
a pool of worker processes, or on a Ray cluster. Each job is one message and its node's
context, and gives the reply and the context as the ClientApp left it; the app seeds
its own work, so which worker runs a job, and in what order, changes nothing."""

from __future__ import annotations

import multiprocessing
import os
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol

from edgetwin.common.spawn import without_main_script
from edgetwin.emulator.flower.app import FlowerApp, load_component

Job = tuple[Any, Any]  # (flwr Message, flwr Context)

_CLIENTAPPS: dict[tuple[str, str], Any] = {}  # the ClientApps this process loaded, by app


class Workers(Protocol):
    def run(self, jobs: list[Job]) -> list[Job]:
        """Each job's (reply, context), in the jobs' order."""

    def close(self) -> None: ...


def _load(app: FlowerApp) -> Any:
    """The app's ClientApp, loaded once per process."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")  # one core per worker, before torch or numpy load
    warnings.filterwarnings("ignore", category=FutureWarning)  # libraries' deprecations
    key = (str(app.folder), app.clientapp)
    if key not in _CLIENTAPPS:
        _CLIENTAPPS[key] = load_component(app, "clientapp")
    return _CLIENTAPPS[key]


def _run_one(client_app: Any, job: Job) -> Job:
    """One message through the ClientApp; an exception becomes Flower's error reply."""
    from flwr.app import Error, Message
    from flwr.common.constant import ErrorCode

    message, context = job
    try:
        return client_app(message, context), context
    except Exception as err:  # the app's failure is its reply, as in Flower
        reason = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}"
        error = Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason)
        return Message(error, reply_to=message), context


class InProcess:
    """Jobs one after another in this process (tests, debugging)."""

    def __init__(self, app: FlowerApp) -> None:
        self.client_app = _load(app)

    def run(self, jobs: list[Job]) -> list[Job]:
        return [_run_one(self.client_app, job) for job in jobs]

    def close(self) -> None:
        pass


_WORKER_APP: Any = None  # a pool worker's ClientApp


def _start_worker(app: FlowerApp) -> None:
    global _WORKER_APP
    _WORKER_APP = _load(app)


def _run_in_worker(job: Job) -> Job:
    return _run_one(_WORKER_APP, job)


class Processes:
    """A pool of `workers` processes (fresh interpreters), each loading the app once."""

    def __init__(self, app: FlowerApp, workers: int) -> None:
        self.pool = ProcessPoolExecutor(max_workers=workers,
                                        mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_start_worker, initargs=(app,))

    def run(self, jobs: list[Job]) -> list[Job]:
        with without_main_script():  # workers spawn here: not from the caller's script
            return list(self.pool.map(_run_in_worker, jobs))

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def _load_and_run(app: FlowerApp, job: Job) -> Job:
    return _run_one(_load(app), job)


class OnRay:
    """Jobs as Ray tasks on the cluster at `address` (`auto`: the one this machine is
    part of, or a local one started for the run)."""

    def __init__(self, app: FlowerApp, address: str) -> None:
        import ray

        from edgetwin.emulator.raycluster import connect

        self.ray = ray
        self.started = connect(address)
        self.remote_run: Any = ray.remote(num_cpus=1)(_load_and_run)
        self.app_ref = ray.put(app)

    def run(self, jobs: list[Job]) -> list[Job]:
        futures = [self.remote_run.remote(self.app_ref, job) for job in jobs]
        return list(self.ray.get(futures))

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def workers_for(app: FlowerApp, *, processes: int, ray_address: str | None) -> Workers:
    """Ray where an address is given, else `processes` worker processes (1: this one)."""
    if ray_address:
        return OnRay(app, ray_address)
    if processes <= 1:
        return InProcess(app)
    return Processes(app, processes)
