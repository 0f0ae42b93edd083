"""`edgetwin replay`: sampled sessions of an emulated run, run again on attached devices.

Each sampled session goes to a device that stands for its group's profile (devices
of one class share the class's sessions): the round's payload goes down as real
bytes, the same local steps of the same workload and setup run, the trained
tensors come back up. Every result is journaled as it arrives. A device whose
link fails is reconnected with backoff; one that stays down hands its sessions to
the rest of its class, and what no device of a class can run is journaled `lost`
with the reason. Local devices whose CPU sets overlap take turns, so that one
does not slow the other's measurement.
"""

from __future__ import annotations

import contextlib
import queue
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgetwin.calibration.load import BUSY_CPU_SHARE, BUSY_SPREAD
from edgetwin.common.errors import InputError
from edgetwin.emulator.engine import Engine, Results
from edgetwin.emulator.output.folder import RunFolder, load_run, rerun
from edgetwin.hil.agent.requests import download_payload, native_ops, not_replayable, session_fields
from edgetwin.hil.attached_bench import connect
from edgetwin.hil.inventory import Device, Inventory, LocalConfig, load_inventory
from edgetwin.hil.link import AgentError, AgentLink
from edgetwin.hil.replay.journal import LOST, REPLAYED, Journal
from edgetwin.hil.replay.sampling import stratified_sample
from edgetwin.hil.replay.sessions import RunSession, SessionRecorder
from edgetwin.hil.retry import backoff_s, worth_retrying
from edgetwin.hil.transports import LinkError
from edgetwin.profiles import variability


@dataclass(frozen=True)
class ReplayOptions:
    sample: int = 40
    seed: int = 0
    retries: int = 3


@dataclass
class Prepared:
    """A run simulated again and its sessions, beside the devices that can replay them."""

    run: RunFolder
    engine: Engine
    results: Results
    sessions: list[RunSession]
    inventory: Inventory
    classes: dict[str, list[Device]]  # profile name -> devices standing for it

    def profile_name(self, s: RunSession) -> str:
        return self.results.fleet.profiles[s.group].name

    def replayable(self, s: RunSession) -> bool:
        """A device stands for the session's profile (whether one can run its setup is
        `runner_for`'s question)."""
        return self.profile_name(s) in self.classes

    def runner_for(self, s: RunSession) -> tuple[str | None, str]:
        """The runner kind of the session's class that can run it as it was priced (torch
        before native), or None and why none can."""
        kinds = sorted({d.runner.kind for d in self.classes[self.profile_name(s)]},
                       key=lambda k: k != "torch")
        why = ""
        for kind in kinds:
            reason = not_replayable(s.cost.workload, kind)
            if reason is None:
                return kind, ""
            why = why or reason
        return None, why


def prepare(run_dir: Path, devices_path: Path) -> Prepared:
    run = load_run(run_dir)
    inventory = load_inventory(devices_path)
    recorder = SessionRecorder()
    engine, results = rerun(run, recorder)
    sessions = recorder.sessions(results)
    classes = inventory.by_profile_name()
    prepared = Prepared(run, engine, results, sessions, inventory, classes)
    if not any(prepared.replayable(s) for s in sessions):
        groups = sorted({p.name for p in results.fleet.profiles})
        raise InputError(str(devices_path), "devices", "no device stands for a profile of "
                         f"this run's groups (groups: {', '.join(groups)}; devices stand for: "
                         f"{', '.join(sorted(classes)) or 'nothing yet'}); calibrate them or "
                         "set their profile")
    return prepared


def draw_sample(prepared: Prepared, options: ReplayOptions) -> list[tuple[int, str]]:
    eligible = [s for s in prepared.sessions if prepared.replayable(s)]
    return stratified_sample(eligible, options.sample, options.seed)


def predicted(s: RunSession) -> dict[str, Any]:
    """The emulator's figures for the session at a nominal unit of its profile: its step,
    its compute (set-up and steps) with the 90 % interval its profile's session
    variability gives, and how sure the run was of its outcome."""
    c, p, i = s.cost, s.planned, s.index
    compute_s = c.setup_s + c.step_s * s.local_steps
    low, high = (float(variability.quantile(q, np.array([c.session_cv]))[0])
                 for q in (0.05, 0.95))
    margin = s.timing_margin
    return {"step_s": c.step_s, "setup_s": c.setup_s, "compute_s": compute_s,
            "compute_p05_s": compute_s * low, "compute_p95_s": compute_s * high,
            "session_cv": c.session_cv,
            "compute_factor": s.compute_factor,
            "timing_margin": margin if np.isfinite(margin) else None,
            "margin_class": s.margin_class, "p_complete": s.p_complete,
            "peak_memory_mb": c.peak_memory_mb,
            "energy_j": c.step_energy_j * s.local_steps + c.busy_w * c.setup_s,
            "download_bytes": c.download_bytes, "upload_bytes": c.upload_bytes,
            "download_s": float(p.download_end_s[i] - p.start_s[i]),
            "upload_s": float(p.upload_end_s[i] - p.compute_end_s[i])}


def replay_session(link: AgentLink, device: Device, s: RunSession) -> dict[str, Any]:
    """Run one session on the device; what was measured."""
    w = s.cost.workload
    seed = s.client * 1_000_003 + s.round  # the session's data: who trains, in which round
    payload = download_payload(w, seed=seed)
    timeout_s = 120.0 + 20.0 * s.cost.step_s * s.local_steps
    fields = session_fields(w.model, w.method, w.setup, s.local_steps, payload, seed=seed,
                            torch_device=device.runner.torch_device, timeout_s=timeout_s,
                            ops=native_ops(w) if device.runner.kind == "native" else None)
    sent = time.perf_counter()
    received_s = last_step = upload_s = serialized = serialize_s = None
    upload_bytes = 0
    result: dict[str, Any] = {}
    for ev in link.events("session", max(600.0, timeout_s), **fields):
        now = time.perf_counter()
        if ev["event"] == "received":
            received_s = now - sent
        elif ev["event"] == "step":
            last_step = now
        elif ev["event"] == "serialized":  # the transfer is timed from here
            serialized, serialize_s = now, float(ev["serialize_s"])
        elif ev["event"] == "upload":
            upload_s = now - (serialized or last_step or now)
            upload_bytes = int(ev["bytes"])
        elif ev["event"] == "result":
            result = ev
        elif ev["event"] == "error":
            raise AgentError(device.name, str(ev.get("code")), str(ev.get("message")))
    times = [float(t) for t in result["step_time_s"]]
    return {"step_time_s": times, "mean_step_s": statistics.fmean(times),
            "median_step_s": statistics.median(times), "compute_s": sum(times),
            "peak_memory_mb": float(result["peak_memory_mb"]),
            "energy_j": result.get("energy_j"), "meter": result.get("meter"),
            "load_s": result.get("load_s"), "download_s": received_s, "upload_s": upload_s,
            "serialize_s": serialize_s, "upload_bytes": upload_bytes, "out_of_memory": False}


# --- running on the devices ---------------------------------------------------------------
@dataclass
class Progress:
    """What the progress bar shows; called from the device threads."""

    on_done: Callable[[str, bool], None] = lambda device, ok: None
    on_error: Callable[[str, str], None] = lambda device, line: None
    on_busy: Callable[[str, bool], None] = lambda device, busy: None


@dataclass
class _Class:
    """The sessions of one device class, shared by its devices."""

    name: str
    todo: queue.Queue[tuple[int, str]] = field(default_factory=queue.Queue)
    in_flight: int = 0  # sessions a device holds now (and may hand back)
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


class DevicePool:
    """One thread per device; a queue of sessions per device class."""

    def __init__(self, prepared: Prepared, journal: Journal, options: ReplayOptions,
                 progress: Progress) -> None:
        self.p, self.journal, self.options, self.progress = prepared, journal, options, progress
        self.stop = threading.Event()
        self.links: dict[str, AgentLink] = {}
        # per device: its fixed probe now against when its profile was calibrated
        self.since_calibration: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.turns = _cpu_turns(prepared.inventory)

    def run(self, todo: list[tuple[int, str]]) -> None:
        """Replay `todo`; returns when every session is journaled, or raises
        KeyboardInterrupt after stopping the devices cleanly."""
        classes = {f"{name}/{d.runner.kind}": _Class(name) for name, devs in
                   self.p.classes.items() for d in devs}
        for row, stratum in todo:
            s = self.p.sessions[row]
            kind, why = self.p.runner_for(s)
            if kind is None:  # what no device of its class can run as it was priced
                self._lost(row, stratum, "", f"not replayable: {why}")
                continue
            classes[f"{self.p.profile_name(s)}/{kind}"].todo.put((row, stratum))
        threads = [threading.Thread(target=self._device, args=(d, classes[
            f"{name}/{d.runner.kind}"]), daemon=True)
                   for name, devs in self.p.classes.items() for d in devs
                   if not classes[f"{name}/{d.runner.kind}"].todo.empty()]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.2)
        except KeyboardInterrupt:
            self.stop.set()
            with self.lock:
                for link in self.links.values():
                    link.close()
            for t in threads:
                t.join(timeout=30)
            raise
        for cls in classes.values():  # what no device of the class could run
            while not cls.todo.empty():
                row, stratum = cls.todo.get()
                self._lost(row, stratum, "", cls.last_error or "no device of this class "
                           "was reachable")

    def _device(self, device: Device, cls: _Class) -> None:
        link: AgentLink | None = None
        failures = 0
        try:
            while not self.stop.is_set():
                try:
                    row, stratum = cls.todo.get(timeout=0.2)
                except queue.Empty:
                    with cls.lock:
                        if cls.in_flight == 0:
                            return
                    continue
                with cls.lock:
                    cls.in_flight += 1
                try:
                    link, failures, handed_back = self._one(device, cls, link, failures, row,
                                                            stratum)
                finally:
                    with cls.lock:
                        cls.in_flight -= 1
                if handed_back:
                    return
        finally:
            if link is not None:
                link.close()
            with self.lock:
                self.links.pop(device.name, None)

    def _one(self, device: Device, cls: _Class, link: AgentLink | None, failures: int,
             row: int, stratum: str) -> tuple[AgentLink | None, int, bool]:
        """Replay one session, reconnecting with backoff; a device that stays down hands
        the session back to its class (True)."""
        while not self.stop.is_set():
            try:
                if link is None:
                    link = connect(device, retries=0)
                    with self.lock:
                        self.links[device.name] = link
                    if device.name not in self.since_calibration:
                        with self.turns.get(device.name) or contextlib.nullcontext():
                            self._compare_with_calibration(link, device)
                self._replay(link, device, row, stratum)
                return link, 0, False
            except LinkError as err:
                if link is not None:
                    link.close()
                link = None
                if self.stop.is_set():
                    break
                failures += 1
                self.progress.on_error(device.name, str(err))
                if not worth_retrying(err, failures, self.options.retries):
                    cls.last_error = str(err)
                    cls.todo.put((row, stratum))  # for another device of the class
                    return None, failures, True
                time.sleep(backoff_s(failures))
            except AgentError as err:
                if err.code == "memory":
                    self._out_of_memory(row, stratum, device, err.message)
                else:
                    self._lost(row, stratum, device.name, str(err))
                    self.progress.on_error(device.name, str(err))
                return link, failures, False
        return link, failures, False

    def _compare_with_calibration(self, link: AgentLink, device: Device) -> None:
        """Time the calibration's fixed probe on the device (torch runners), beside the
        profile's: a device slower or busier than when it was calibrated shows here."""
        profile = device.load_profile()
        if device.runner.kind != "torch" or profile is None or profile.load is None:
            self.since_calibration[device.name] = {}
            return
        try:
            got = link.call("calibrate", 600.0, stage="load",
                            torch_device=device.runner.torch_device)["load"]
        except AgentError:
            self.since_calibration[device.name] = {}
            return
        self.since_calibration[device.name] = {
            "probe_s": got["probe_s"], "probe_s_at_calibration": profile.load.probe_s,
            "probe_ratio": round(got["probe_s"] / profile.load.probe_s, 4),
            "other_cpu_share": got["other_cpu_share"],
            "busy": got["other_cpu_share"] > BUSY_CPU_SHARE or got["probe_spread"] > BUSY_SPREAD}

    def _replay(self, link: AgentLink, device: Device, row: int, stratum: str) -> None:
        s = self.p.sessions[row]
        self.progress.on_busy(device.name, True)
        started = time.time()
        try:
            with self.turns.get(device.name) or contextlib.nullcontext():
                measured = replay_session(link, device, s)
        finally:
            self.progress.on_busy(device.name, False)
        if self.stop.is_set():
            return
        self.journal.record(self._entry(row, stratum, device.name, REPLAYED, started,
                                        measured=measured))
        self.progress.on_done(device.name, True)

    def _out_of_memory(self, row: int, stratum: str, device: Device, why: str) -> None:
        """The device ran out of the session's memory bound: a measured outcome."""
        bound = float(why.split("bound of ")[-1].split()[0]) if "bound of " in why else 0.0
        self.journal.record(self._entry(row, stratum, device.name, REPLAYED, time.time(),
                                        measured={"out_of_memory": True, "reason": why,
                                                  "peak_memory_mb": bound}))
        self.progress.on_done(device.name, True)

    def _lost(self, row: int, stratum: str, device: str, why: str) -> None:
        self.journal.record(self._entry(row, stratum, device, LOST, time.time(), reason=why))
        self.progress.on_done(device, False)

    def _entry(self, row: int, stratum: str, device: str, status: str, started: float,
               **extra: Any) -> dict[str, Any]:
        s = self.p.sessions[row]
        return {"session": row, "status": status, "stratum": stratum, "device": device,
                "client": s.client, "group": self.p.results.fleet.groups[s.group].name,
                "profile": self.p.profile_name(s), "round": s.round, "outcome": s.outcome,
                "steps": s.local_steps, "started_at": round(started, 3),
                "finished_at": round(time.time(), 3), "predicted": predicted(s), **extra}


def _cpu_turns(inventory: Inventory) -> dict[str, threading.Lock]:
    """A lock shared by local devices whose CPU sets overlap (transitively)."""
    import os

    local = {d.name: set(d.transport.cpus or sorted(os.sched_getaffinity(0)))
             for d in inventory.devices if isinstance(d.transport, LocalConfig)}
    groups: list[set[str]] = []
    for name, cpus in local.items():
        joined = [g for g in groups if any(local[n] & cpus for n in g)]
        merged = {name}.union(*joined) if joined else {name}
        groups = [g for g in groups if g not in joined] + [merged]
    locks: dict[str, threading.Lock] = {}
    for g in groups:
        if len(g) > 1:
            lock = threading.Lock()
            locks.update({n: lock for n in g})
    return locks


def journal_header(prepared: Prepared, devices_path: Path, options: ReplayOptions,
                   sample: list[tuple[int, str]]) -> dict[str, Any]:
    return {"run": str(prepared.run.path.resolve()), "devices": str(devices_path.resolve()),
            "seed": options.seed, "sample_size": options.sample,
            "sample": [[row, stratum] for row, stratum in sample]}


def open_journal(prepared: Prepared, devices_path: Path, out: Path, options: ReplayOptions
                 ) -> tuple[Journal, list[tuple[int, str]]]:
    """The replay's journal (continued where one exists, its sample kept) and the
    sessions still to replay: those never replayed, and those lost before."""
    sample = draw_sample(prepared, options)
    journal = Journal.open(out / "journal.jsonl",
                           journal_header(prepared, devices_path, options, sample))
    sample = [(int(r), str(st)) for r, st in journal.header["sample"]]
    return journal, [(r, st) for r, st in sample if journal.state(r) != REPLAYED]
