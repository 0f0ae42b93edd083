"""The native runner: `opbench --agent` speaks the agent protocol of edgetwin.hil.agent.protocol.

One C++ binary (calibration/native/opbench.cpp) is both the op benchmark and the agent
of devices without Python. These tests build it with g++ and talk to it over pipes as
a host does: every request ends with one terminal event, every fault has its error
code, and the agent serves the next request after any of them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgetwin.calibration.opsuite import (
    Case,
    activation_case,
    attention_case,
    cross_entropy_case,
    elementwise_case,
    embedding_case,
    fresh_pages_case,
    matmul_case,
    norm_case,
    optimizer_case,
)
from edgetwin.calibration.trace import parse_line
from edgetwin.hil.agent import protocol as proto
from edgetwin.hil.agent.requests import download_payload, native_ops, session_fields
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import ModelArch
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import Workload, build_workload
from tests.agent_faults import FAULTS, MAX_LINE_BYTES, Fault

ROOT = Path(__file__).resolve().parents[1]
EVENT_TIMEOUT_S = 60.0  # no single event of these small requests takes this long
TINY = ModelArch("t", "llama", 64, 2, 4, 2, 16, 128, 500, False, "silu")
Events = list[dict[str, Any]]


@pytest.fixture
def runner(native_runner: Path) -> Path:
    return native_runner


class NativeAgent:
    """A running `opbench --agent`: requests in, events out, each read with a timeout."""

    def __init__(self, binary: Path, workdir: Path, *args: str) -> None:
        self.workdir = workdir
        self.proc = subprocess.Popen([str(binary), "--agent", "--workdir", str(workdir), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self._pending = b""
        self.hello = self.read_event()

    def read_event(self, timeout_s: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            assert left > 0, "the agent sent no event in time"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
                assert chunk, f"the agent closed its stdout (exit {self.proc.poll()})"
                self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        assert message["protocol"] == proto.PROTOCOL and message["version"] == proto.VERSION
        return message

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send_line(self, line: bytes) -> None:
        self.write(line + b"\n")

    def send(self, kind: str, rid: str, **fields: Any) -> None:
        self.write(proto.encode(proto.request(kind, rid, **fields)))

    def until_terminal(self, timeout_s: float = EVENT_TIMEOUT_S) -> Events:
        """The events of one request, its terminal one last."""
        events = [self.read_event(timeout_s)]
        while events[-1]["event"] not in proto.TERMINAL:
            events.append(self.read_event(timeout_s))
        return events

    def request(self, kind: str, rid: str, **fields: Any) -> Events:
        self.send(kind, rid, **fields)
        events = self.until_terminal()
        assert {e["id"] for e in events} == {rid}
        return events

    def close(self) -> int:
        """End of stdin: the agent exits (0 when all went well)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


Start = Callable[..., NativeAgent]  # start(*agent_args) -> a running agent


@pytest.fixture
def start(runner: Path, tmp_path: Path) -> Iterator[Start]:
    """Starts agents (each with a work directory of its own); kills what is left."""
    started: list[NativeAgent] = []

    def go(*args: str) -> NativeAgent:
        agent = NativeAgent(runner, tmp_path / f"work{len(started)}", *args)
        started.append(agent)
        return agent

    yield go
    for agent in started:
        agent.stop()


def tiny_workload() -> Workload:
    return build_workload(TINY, Method("lora", 4, 8.0, ("q_proj", "v_proj")),
                          TrainingSetup(batch=1, seq=16))


def session_request(steps: int = 2, ops: list[dict[str, Any]] | None = None,
                    **bounds: float) -> dict[str, Any]:
    w = tiny_workload()
    fields = session_fields(w.model, w.method, w.setup, steps, download_payload(w, 0), 0,
                            "cpu", ops=native_ops(w) if ops is None else ops)
    return {**fields, **bounds}


def refused(events: Events) -> tuple[str, str]:
    assert len(events) == 1 and events[0]["event"] == "error"
    return events[0]["code"], events[0]["message"]


def assert_serves(agent: NativeAgent) -> None:
    events = agent.request("facts", "next")
    assert [e["event"] for e in events] == ["result"]


# --- start, facts --------------------------------------------------------------------------
def test_hello_then_exit_at_end_of_input(start: Start) -> None:
    agent = start()
    hello = agent.hello
    assert hello["event"] == "hello" and hello["id"] is None
    assert hello["agent"] == "native" and hello["kinds"] == list(proto.KINDS)
    assert hello["max_line_bytes"] == proto.DEFAULT_MAX_LINE_BYTES
    assert hello["workdir"] == str(agent.workdir.resolve()) and agent.workdir.is_dir()
    assert hello["pid"] == agent.proc.pid
    assert agent.close() == 0


def test_facts(start: Start) -> None:
    agent = start()
    (result,) = agent.request("facts", "f1")
    facts = result["facts"]
    assert result["event"] == "result" and facts["runner"] == "native"
    assert facts["threads"] == 1 and facts["cores"] >= 1 and facts["cpus"]
    assert facts["ram_mb"] > 0 and facts["build"] and facts["machine"] and facts["os"]
    assert "/proc status (memory)" in facts["meters"]
    assert facts["workdir"] == str(agent.workdir.resolve())


# --- calibrate -----------------------------------------------------------------------------
def suite_cases() -> list[Case]:
    """A few cases of every op kind and implementation the runner has, op-suite shaped."""
    return [
        matmul_case(16, 32, 8), matmul_case(7, 5, 3),
        attention_case(1, 2, 16, 8, "forward"), attention_case(1, 2, 16, 8, "backward"),
        norm_case("rmsnorm", 16, 64, "forward"), norm_case("rmsnorm", 16, 64, "backward"),
        norm_case("layernorm", 8, 32, "forward"), norm_case("layernorm", 8, 32, "backward"),
        *(activation_case(impl, 4096, phase) for impl in ("gelu_tanh", "silu", "gelu_new")
          for phase in ("forward", "backward")),
        elementwise_case("add", 4096, "forward"), elementwise_case("mul", 4096, "forward"),
        elementwise_case("mul", 4096, "backward"), elementwise_case("dropout", 4096, "forward"),
        elementwise_case("dropout", 4096, "backward"), fresh_pages_case(1 << 20),
        embedding_case(16, 100, 32, "forward"), embedding_case(16, 100, 32, "backward"),
        cross_entropy_case(8, 500, "forward"), cross_entropy_case(8, 500, "backward"),
        optimizer_case("adamw", 10_000, 4), optimizer_case("sgd", 10_000, 4),
    ]


def as_sent(case: Case) -> dict[str, Any]:
    return {**vars(case), "shape": list(case.shape)}


def test_calibrate_ops_answers_trace_lines_and_journals_them(start: Start) -> None:
    agent = start()
    cases = suite_cases()
    unsupported = Case("attention", "flash", "forward", (1, 2, 16, 16, 8), 1.0, 1.0, 1)
    events = agent.request("calibrate", "ops1", stage="ops", journal="device/ops.jsonl",
                           cases=[as_sent(c) for c in [*cases, unsupported]],
                           min_time_s=0.0, max_reps=3)
    measured = [e for e in events if e["event"] == "measurement"]
    assert [e["event"] for e in events[len(measured):]] == ["skipped", "result"]
    assert events[-2]["case"] == unsupported.id and events[-2]["reason"]
    assert events[-1]["measured"] == len(cases)
    for number, (event, case) in enumerate(zip(measured, cases, strict=True), start=1):
        m = parse_line(event["trace"], "native", number)
        assert (m.case, m.op, m.phase, m.shape) == (case.id, case.op, case.phase, case.shape)
        assert (m.flops, m.bytes, m.kernels) == (case.flops, case.bytes, case.kernels)
        assert m.source == "native" and m.dtype == "fp32" and m.latency_s.reps >= 3
        assert m.peak_memory_bytes is None and m.energy_j is None
    journal = (agent.workdir / "device" / "ops.jsonl").read_text().splitlines()
    assert journal == [e["trace"] for e in measured]


def test_calibrate_host_measures_memory_and_storage(start: Start) -> None:
    agent = start()
    (result,) = agent.request("calibrate", "host1", stage="host", quick=True)
    host = result["host"]
    assert host["ram_mb"] >= host["available_mb"] > 0 and host["runtime_overhead_mb"] > 0
    assert host["write_mb_per_s"] > 0 and host["read_mb_per_s"] > 0
    assert host["device_class"] in ("phone", "board", "laptop", "server")
    assert host["power"] is None
    assert list(agent.workdir.iterdir()) == []  # the storage test file is gone


def test_probe_stages_are_refused_with_a_reason(start: Start) -> None:
    agent = start()
    for stage in ("probes", "retention"):
        code, message = refused(agent.request("calibrate", stage, stage=stage))
        assert code == proto.BAD_VALUE and "no Python models" in message


# --- sessions ------------------------------------------------------------------------------
def test_session_runs_the_workloads_ops_and_uploads_a_payload_of_the_downloads_size(
        start: Start) -> None:
    agent = start()
    fields = session_request(steps=2)
    events = agent.request("session", "s1", **fields)
    names = [e["event"] for e in events]
    assert names == ["received", "step", "step", "upload", "result"]
    size = fields["download"]["bytes"]
    assert events[0]["bytes"] == size
    for i, step in enumerate(events[1:3]):
        assert step["step"] == i and step["time_s"] > 0 and step["rss_mb"] > 0
        assert step["energy_j"] is None
    upload = events[3]
    data = base64.b64decode(upload["data"], validate=True)
    assert upload["bytes"] == len(data) == size
    assert upload["sha256"] == hashlib.sha256(data).hexdigest()
    result = events[4]
    assert result["steps"] == 2 and len(result["step_time_s"]) == 2
    assert result["upload_bytes"] == size and result["download_applied"] is False
    assert result["peak_memory_mb"] > 0 and result["load_s"] >= 0
    assert result["energy_j"] is None and result["meter"] is None


def test_session_prices_an_op_it_has_no_kernel_for_as_a_memory_pass(start: Start) -> None:
    agent = start()
    ops = [{"kind": "storage", "impl": "", "phase": "io", "shape": [1], "flops": 0.0,
            "bytes": 1 << 20, "count": 2},
           {"kind": "elementwise", "impl": "", "phase": "forward", "shape": [4096],
            "flops": 4096.0, "bytes": 49152.0, "count": 1}]
    events = agent.request("session", "s2", **session_request(steps=1, ops=ops))
    assert [e["event"] for e in events] == ["received", "step", "upload", "result"]


# --- faults: each has its code, and the next request is served ------------------------------
@pytest.fixture(scope="module")
def table_agent(native_runner: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[NativeAgent]:
    """One agent for the fault table: it must serve on after each fault."""
    agent = NativeAgent(native_runner, tmp_path_factory.mktemp("faults") / "work",
                        "--max-line-bytes", str(MAX_LINE_BYTES))
    assert agent.hello["max_line_bytes"] == MAX_LINE_BYTES
    yield agent
    agent.stop()


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_bad_input_gets_an_error_line_and_the_next_request_is_served(
        table_agent: NativeAgent, fault: Fault) -> None:
    table_agent.write(fault.line)
    (ev,) = table_agent.until_terminal()
    assert (ev["event"], ev["code"], ev["id"]) == ("error", fault.code, fault.request_id), ev
    assert "\n" not in ev["message"] and fault.says in ev["message"], ev["message"]
    assert_serves(table_agent)


def test_a_blank_line_is_no_request(start: Start) -> None:
    agent = start()
    agent.send_line(b"  \t ")  # nothing answers it; the next request is served
    assert_serves(agent)


@pytest.mark.parametrize("journal", ["../x", "/etc/x", "a/../../x", "ok/../../x"])
def test_a_journal_outside_the_work_directory_is_refused(start: Start, journal: str) -> None:
    agent = start()
    case = as_sent(matmul_case(4, 4, 4))
    code, message = refused(agent.request("calibrate", "j1", stage="ops", journal=journal,
                                          cases=[case]))
    assert code == proto.BAD_PATH and "outside the work directory" in message
    assert not (agent.workdir.parent / "x").exists()
    assert_serves(agent)


def test_a_journal_through_a_link_out_of_the_work_directory_is_refused(start: Start,
                                                                       tmp_path: Path) -> None:
    agent = start()
    (agent.workdir / "out").symlink_to(tmp_path)
    code, _ = refused(agent.request("calibrate", "j2", stage="ops", journal="out/x.jsonl"))
    assert code == proto.BAD_PATH
    assert_serves(agent)


def test_bad_values_name_their_field(start: Start) -> None:
    agent = start()
    good = session_request(steps=1)
    ops = [dict(op) for op in good["ops"]]
    ops[3]["shape"] = []
    bad_sha = {**good["download"], "sha256": "0" * 64}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("session", {**good, "steps": 0}, "steps: must be in [1, 100000], got 0"),
        ("session", {**good, "ops": ops}, "ops[3].shape: expected 1-6 positive integers"),
        ("session", {**good, "ops": []}, "ops: "),
        ("session", {**good, "download": bad_sha}, "download: sha256 does not match"),
        ("session", {**good, "torch_device": "cuda"}, "torch_device: expected one of cpu"),
        ("session", {**good, "surprise": 1}, "surprise: unknown field"),
        ("calibrate", {"stage": "ops", "min_time_s": -1}, "min_time_s: must be in [0, 60]"),
        ("calibrate", {"stage": "ops", "cases": [{"op": "matmul"}]},
         "cases[0].shape: expected 1-6 positive integers"),
        ("calibrate", {"stage": "ops", "timeout_s": 0.01}, "timeout_s: must be in [0.1, "),
    ]
    for kind, fields, want in cases:
        code, message = refused(agent.request(kind, "b1", **fields))
        assert code == proto.BAD_VALUE and message.startswith(want), message
        assert_serves(agent)


def test_a_session_over_its_memory_bound_is_stopped_and_the_next_one_runs(start: Start) -> None:
    agent = start()
    (host,) = agent.request("calibrate", "h", stage="host", quick=True)
    baseline = host["host"]["runtime_overhead_mb"]
    big = [{"kind": "matmul", "impl": "", "phase": "forward", "shape": [1024, 4096, 1024],
            "flops": 0.0, "bytes": 0.0, "count": 1}]  # 36 MiB of operands
    code, message = refused(agent.request(
        "session", "m1", **session_request(ops=big, max_memory_mb=baseline + 16))[1:])
    assert code == proto.MEMORY and message.startswith("out of memory: the request")
    code, _ = refused(agent.request("session", "m2",
                                    **session_request(max_memory_mb=1.0))[1:])
    assert code == proto.MEMORY  # its baseline alone is over
    events = agent.request("session", "m3", **session_request(steps=1))
    assert events[-1]["event"] == "result"


def test_calibrate_ops_over_its_memory_bound_is_stopped(start: Start) -> None:
    agent = start()
    case = as_sent(matmul_case(4096, 4096, 4096))  # 192 MiB of operands
    code, _ = refused(agent.request("calibrate", "m4", stage="ops", cases=[case],
                                    max_memory_mb=64))
    assert code == proto.MEMORY
    assert_serves(agent)


def test_a_session_over_its_time_bound_is_stopped(start: Start) -> None:
    agent = start()
    slow = [{"kind": "matmul", "impl": "", "phase": "forward", "shape": [64, 64, 64],
             "flops": 0.0, "bytes": 0.0, "count": 1000}]
    t0 = time.monotonic()
    events = agent.request("session", "t1", **session_request(steps=100_000, ops=slow,
                                                               timeout_s=0.5))
    assert events[-1]["event"] == "error" and events[-1]["code"] == proto.TIMEOUT
    assert events[-1]["message"] == "timed out after 0.5 s; stopped"
    assert time.monotonic() - t0 < 20
    assert_serves(agent)
