"""Calibration of an attached device: the measurements run on it, through its agent.

Every measurement streams back as it is taken and is journaled here by the
calibration; the agent also keeps its own copy on the device. A link that drops is
reconnected with backoff, the device's copy is pulled to recover what was
measured but not yet received, and the calibration carries on with what is left.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from edgetwin.calibration.allocator import StepMemory
from edgetwin.calibration.bench import HostFacts, Plan
from edgetwin.calibration.load import LoadReading
from edgetwin.calibration.opsuite import Case
from edgetwin.calibration.power import PowerReading
from edgetwin.calibration.probe_models import Probe
from edgetwin.calibration.steps import WARMUP_STEPS, ProbeSession
from edgetwin.calibration.trace import Measurement, parse_line
from edgetwin.hil.agent.requests import native_ops, probe_field, session_fields
from edgetwin.hil.inventory import Device
from edgetwin.hil.link import AgentError, AgentLink
from edgetwin.hil.retry import backoff_s, retried, worth_retrying
from edgetwin.hil.transports import LinkError, transport_for
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload

CASES_PER_REQUEST = 16
RETRIES = 4


def connect(device: Device, retries: int = RETRIES,
            sleep: Callable[[float], None] = time.sleep) -> AgentLink:
    """A link to the device's agent, retried with backoff unless the failure is one that
    trying again cannot mend."""
    return retried(lambda: AgentLink(transport_for(device)), retries, sleep)


class AgentBench:
    """Calibration measurements on an attached device, through its agent."""

    def __init__(self, device: Device, journal: str,
                 log: Callable[[str], None] | None = None) -> None:
        self.dev = device
        self.transport = transport_for(device)
        self.device: str = device.runner.torch_device
        self.native = device.runner.kind == "native"
        self.origin = (f"attached device {device.name} ({device.transport.kind}, "
                       f"{device.runner.kind} runner)")
        self.journal = f"calibration/{journal}"  # the device's own copy, in its work dir
        self.heap_retention_measurable = not self.native and self.device == "cpu"
        self.log = log or (lambda line: None)
        self.link = connect(device)

    def close(self) -> None:
        self.link.close()

    def facts(self) -> dict[str, Any]:
        return dict(self._call("facts", 600.0)["facts"])

    # --- op cases ----------------------------------------------------------------------------
    def measure(self, cases: Sequence[Case], plan: Plan,
                record: Callable[[Measurement], None]) -> None:
        left = {c.id: c for c in cases}
        retries = 0
        while left:
            batch = list(left.values())[:CASES_PER_REQUEST]
            try:
                for ev in self.link.events(
                        "calibrate", 900.0, stage="ops", cases=[_case_field(c) for c in batch],
                        journal=self.journal, min_time_s=plan.min_time_s,
                        max_reps=plan.max_reps, quick=plan.quick,
                        torch_device=self.device):
                    self._measurement(ev, left, record)
                    if ev["event"] == "error":
                        raise AgentError(self.dev.name, ev.get("code", ""),
                                         ev.get("message", ""))
                retries = 0
            except LinkError as err:
                retries += 1
                self._reconnect(err, retries)
                for m in self._recover():
                    if m.case in left:
                        del left[m.case]
                        record(m)

    def _measurement(self, ev: dict[str, Any], left: dict[str, Case],
                     record: Callable[[Measurement], None]) -> None:
        if ev["event"] == "skipped":  # a runner without this op kind
            left.pop(str(ev.get("case")), None)
        elif ev["event"] == "measurement":
            m = parse_line(str(ev["trace"]), f"{self.dev.name} (agent)", 1)
            if m.case in left:
                del left[m.case]
                record(m)

    def _recover(self) -> Iterator[Measurement]:
        """Measurements the device journaled that the dropped link did not carry."""
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "device.trace.jsonl"
            try:
                self.transport.pull(f"{self.transport.workdir}/{self.journal}", local)
            except LinkError:
                return
            for number, line in enumerate(local.read_text().splitlines(), start=1):
                with contextlib.suppress(Exception):  # a torn last line is measured again
                    yield parse_line(line, str(local), number)

    # --- probe steps, memory, host --------------------------------------------------------------
    def probe_sessions(self, probes: Sequence[Probe], steps: int, repeats: int, seed: int
                       ) -> list[list[ProbeSession]]:
        out: list[list[ProbeSession]] = [[] for _ in probes]
        if self.native:  # the runner's own training sessions: each probe's op list
            for r in range(repeats):
                for i, probe in enumerate(probes):
                    w = build_workload(probe.arch, probe.method,
                                       TrainingSetup(batch=probe.batch, seq=probe.seq))
                    got = self._call("session", 1800.0, **session_fields(
                        probe.arch, probe.method, w.setup, steps + WARMUP_STEPS, b"",
                        seed + r, "cpu", ops=native_ops(w)))
                    out[i].append(ProbeSession(float(got.get("load_s") or 0.0),
                                               tuple(float(t) for t in got["step_time_s"])))
            return out
        got = self._call("calibrate", 1800.0, stage="probes", probes=[
            {**_probe_field(p, steps, seed), "repeats": repeats} for p in probes],
            torch_device=self.device, timeout_s=3600.0 * max(1, len(probes)))
        for e in got["probe_sessions"]:
            out[int(e["index"])].append(ProbeSession(float(e["setup_s"]), tuple(
                float(t) for t in e["step_times_s"])))
        return out

    def load(self) -> LoadReading | None:
        """The device's load, where its runner measures one (the torch agent's)."""
        if self.native:
            return None
        got = self._call("calibrate", 600.0, stage="load", torch_device=self.device,
                         timeout_s=600.0)
        return LoadReading(**got["load"])

    def probe_memory(self, probe: Probe) -> StepMemory:
        got = self._call("calibrate", 1800.0, stage="retention",
                         probes=[_probe_field(probe, 3, 0)], torch_device=self.device,
                         timeout_s=3600.0)
        return StepMemory(**got["retention"][0])

    def host(self, quick: bool) -> HostFacts:
        got = self._call("calibrate", 1800.0, stage="host", quick=quick,
                         torch_device=self.device, timeout_s=3600.0)
        d = dict(got["host"])
        power = d.pop("power", None)
        return HostFacts(**d, power=PowerReading(**power) if power else None)

    def _call(self, kind: str, silence_s: float, **fields: Any) -> dict[str, Any]:
        """A request's result, with the stage's streamed values collected under their
        event name; a dropped link is reconnected and the request asked again."""
        for attempt in range(RETRIES + 1):
            try:
                collected: dict[str, list[Any]] = {}
                last: dict[str, Any] = {}
                for ev in self.link.events(kind, silence_s, **fields):
                    name = ev["event"]
                    if name == "probe_session":
                        collected.setdefault("probe_sessions", []).append(ev)
                    elif name == "retention":
                        collected.setdefault("retention", []).append(
                            {k: ev[k] for k in ("baseline_bytes", "high_water_bytes")})
                    last = ev
                if last.get("event") == "error":
                    raise AgentError(self.dev.name, str(last.get("code")),
                                     str(last.get("message")))
                return {**last, **collected}
            except LinkError as err:
                self._reconnect(err, attempt + 1)
        raise AssertionError("unreachable")

    def _reconnect(self, err: LinkError, attempt: int) -> None:
        """After the `attempt`-th failure: a new link after a backoff, or `err` raised
        where trying again cannot help or the retries are spent."""
        if not worth_retrying(err, attempt, RETRIES):
            raise err
        self.log(f"{err}; reconnecting")
        time.sleep(backoff_s(attempt))
        self.link.close()
        self.link = connect(self.dev)


def _case_field(c: Case) -> dict[str, Any]:
    return {"op": c.op, "impl": c.impl, "phase": c.phase, "shape": list(c.shape),
            "flops": c.flops, "bytes": c.bytes, "kernels": c.kernels}


def _probe_field(p: Probe, steps: int, seed: int) -> dict[str, Any]:
    return probe_field(p.arch, p.method, p.batch, p.seq, steps, seed)

