"""The device-side agent as a transport starts it: a real process, its stdin and stdout.

Every bad message gets one error line, and the next request is served."""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgetwin.calibration.opsuite import matmul_case, norm_case
from edgetwin.calibration.trace import parse_line
from edgetwin.hil.agent import protocol as proto
from edgetwin.profiles.models import ModelArch
from tests.agent_faults import FAULTS, MAX_LINE_BYTES, Fault

TINY = {"name": "tiny", "family": "llama", "hidden": 64, "layers": 2, "heads": 4,
        "kv_heads": 2, "head_dim": 16, "intermediate": 128, "vocab": 512,
        "tied_embeddings": False, "act": "silu"}
LORA = {"kind": "lora", "lora_rank": 4, "lora_alpha": 8.0, "lora_targets": ["q_proj", "v_proj"]}


class Agent:
    """A running agent; `ask` sends a request and returns its events, the terminal last."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgetwin.hil.agent", "--workdir", str(workdir), "--threads",
             "1", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.hello = self.next()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def next(self, timeout: float = 120) -> dict[str, Any]:
        line = self.lines.get(timeout=timeout)
        assert line, "the agent closed its output"
        data: dict[str, Any] = json.loads(line)
        return data

    def send_raw(self, raw: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(raw)
        self.proc.stdin.flush()

    def ask(self, kind: str, rid: str = "r", **fields: Any) -> list[dict[str, Any]]:
        self.send_raw(proto.encode(proto.request(kind, rid, **fields)))
        return list(self.until_terminal())

    def until_terminal(self) -> Iterator[dict[str, Any]]:
        while True:
            ev = self.next()
            yield ev
            if ev["event"] in ("result", "error"):
                return

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One agent for the tests that leave it as they found it: it serves on after each."""
    a = Agent(tmp_path_factory.mktemp("agent") / "work", "--max-line-bytes",
              str(MAX_LINE_BYTES))
    yield a
    a.close()


def download(data: bytes = b"\x00" * 64) -> dict[str, Any]:
    return proto.payload_field(data)


def session(**over: Any) -> dict[str, Any]:
    return {"model": TINY, "method": LORA, "setup": {"batch": 1, "seq": 16}, "steps": 2,
            "download": download(), **over}


def served(a: Agent) -> None:
    """The agent still answers: facts come back."""
    ev = a.ask("facts", "after")
    assert ev[-1]["event"] == "result" and ev[-1]["id"] == "after"


def test_hello_and_facts(agent: Agent) -> None:
    assert agent.hello["event"] == "hello" and agent.hello["kinds"] == list(proto.KINDS)
    assert Path(agent.hello["workdir"]).name == "work"
    facts = agent.ask("facts")[-1]["facts"]
    assert facts["runner"] == "torch" and facts["torch"].startswith("2.")
    assert facts["cores"] >= 1 and facts["ram_mb"] > 0 and facts["threads"] == 1
    assert "/proc status (memory)" in facts["meters"]


def test_a_session_trains_streams_steps_and_sends_the_trained_tensors(agent: Agent) -> None:
    from edgetwin.hil.agent.requests import download_payload
    from edgetwin.profiles.method import Method
    from edgetwin.profiles.training_setup import TrainingSetup
    from edgetwin.profiles.workload import build_workload

    w = build_workload(ModelArch(**{**TINY, "tied_embeddings": False}),  # type: ignore[arg-type]
                       Method("lora", 4, 8.0, ("q_proj", "v_proj")),
                       TrainingSetup(batch=1, seq=16, serialization="npy"))
    payload = download_payload(w, seed=3)
    events = agent.ask("session", **session(steps=3, download=download(payload),
                                            setup={"batch": 1, "seq": 16,
                                                   "serialization": "npy"}))
    kinds = [e["event"] for e in events]
    assert kinds == ["received", "step", "step", "step", "serialized", "upload", "result"]
    up = events[-2]
    data = base64.b64decode(up["data"])
    assert len(data) == up["bytes"] == w.payload.upload_bytes == len(payload)
    assert hashlib.sha256(data).hexdigest() == up["sha256"]
    assert data != payload  # the tensors were loaded, trained and sent back changed
    result = events[-1]
    assert result["download_applied"] is True and len(result["step_time_s"]) == 3
    assert result["peak_memory_mb"] > 100 and result["energy_j"] is None


MID = {"name": "mid", "family": "llama", "hidden": 256, "layers": 4, "heads": 4,
       "kv_heads": 2, "head_dim": 64, "intermediate": 704, "vocab": 4000,
       "tied_embeddings": False, "act": "silu"}


def test_a_session_runs_the_setup_it_was_priced_with(agent: Agent) -> None:
    """Activation checkpointing (and the precision and attention kernel) reach the device:
    the same session checkpointed peaks lower, and recomputes its forward passes."""
    setup = {"batch": 8, "seq": 256}
    peaks = {}
    for name, extra in (("plain", {}), ("checkpointed", {"activation_checkpointing": True}),
                        ("bf16 sdpa", {"autocast": "bf16", "memory_efficient_attention": True})):
        events = agent.ask("session", **session(model=MID, setup={**setup, **extra}, steps=2))
        assert events[-1]["event"] == "result", events[-1]
        peaks[name] = events[-1]["peak_memory_mb"]
    assert peaks["checkpointed"] < peaks["plain"] - 20, peaks
    from edgetwin.profiles.method import Method
    from edgetwin.profiles.training_setup import TrainingSetup
    from edgetwin.profiles.workload import build_workload

    arch = ModelArch(**MID)  # type: ignore[arg-type]
    saved = {c: build_workload(arch, Method("lora", 4, 8.0, ("q_proj", "v_proj")),
                               TrainingSetup(batch=8, seq=256, activation_checkpointing=c)
                               ).memory.peak_bytes for c in (False, True)}
    assert saved[True] < saved[False]  # as the workload model priced it


def test_calibration_cases_stream_trace_lines_and_journal_them(agent: Agent) -> None:
    cases = [matmul_case(32, 64, 48), norm_case("rmsnorm", 16, 64, "forward")]
    events = agent.ask("calibrate", stage="ops", min_time_s=0.0, max_reps=3,
                       journal="calibration/t.jsonl",
                       cases=[{**vars(c), "shape": list(c.shape)} for c in cases])
    lines = [e["trace"] for e in events if e["event"] == "measurement"]
    assert [parse_line(s, "agent", 1).case for s in lines] == [c.id for c in cases]
    journal = (Path(agent.hello["workdir"]) / "calibration" / "t.jsonl").read_text()\
        .splitlines()
    assert journal == lines and events[-1]["event"] == "result"


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_bad_input_gets_an_error_line_and_the_next_request_is_served(
        agent: Agent, fault: Fault) -> None:
    agent.send_raw(fault.line)
    ev = agent.next()
    assert (ev["event"], ev["code"], ev["id"]) == ("error", fault.code, fault.request_id), ev
    assert "\n" not in ev["message"] and fault.says in ev["message"], ev["message"]
    served(agent)


def test_nothing_is_written_outside_the_work_directory(agent: Agent) -> None:
    work = Path(agent.hello["workdir"])
    (work / "escape").symlink_to(work.parent)
    ev = agent.ask("calibrate", stage="ops", journal="escape/x.jsonl")
    assert ev[-1]["code"] == "bad_path"
    assert not (work.parent / "x.jsonl").exists()


def test_a_session_over_its_memory_bound_is_stopped(agent: Agent) -> None:
    big = {**TINY, "hidden": 1024, "intermediate": 4096, "vocab": 32000, "layers": 4,
           "heads": 16, "kv_heads": 16, "head_dim": 64}
    events = agent.ask("session", **session(model=big, max_memory_mb=700.0, steps=50,
                                            method={"kind": "full"}))
    assert events[-1]["code"] == "memory" and "over its bound of 700 MiB" in \
        events[-1]["message"]
    served(agent)


def test_a_session_over_its_time_bound_is_stopped(agent: Agent) -> None:
    events = agent.ask("session", **session(steps=100_000, timeout_s=3.0))
    assert events[-1]["code"] == "timeout"
    served(agent)


def test_the_agent_stops_its_work_when_the_host_goes_away(tmp_path: Path) -> None:
    a = Agent(tmp_path / "work")
    a.send_raw(proto.encode(proto.request("session", "long", **session(steps=100_000))))
    assert a.next()["event"] == "received"
    assert a.next()["event"] == "step"
    assert a.close() == 0  # end of stdin: the session is stopped, the agent exits


def test_sigterm_stops_the_agent_and_its_worker(tmp_path: Path) -> None:
    a = Agent(tmp_path / "work")
    a.send_raw(proto.encode(proto.request("session", "long", **session(steps=100_000))))
    assert a.next()["event"] == "received"
    assert a.next()["event"] == "step"
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(timeout=30) == 128 + signal.SIGTERM
    from tests.hil_helpers import agent_processes

    assert not agent_processes(tmp_path / "work")


def test_edgetwin_agent_is_the_same_agent(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "edgetwin.cli", "agent", "--workdir",
                           str(tmp_path / "w")], input=proto.encode(proto.request("x", "1")),
                          capture_output=True, timeout=120)
    hello, error = (json.loads(line) for line in proc.stdout.splitlines())
    assert hello["event"] == "hello" and error["code"] == "unknown_kind"
    assert proc.returncode == 0
