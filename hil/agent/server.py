"""`edgetwin agent` (also `python -m edgetwin.hil.agent`): the device side of an attached
device.

Started by a transport (a local child process, `ssh`, `adb shell`), it speaks the
JSON-lines protocol of `edgetwin.hil.agent.protocol` over its own stdin and stdout and never
listens on a network port: who may talk to it is the transport's business (SSH
keys, adb authorization, the local user). Each calibration stage or training
session runs in a child process that the agent bounds in wall time and memory;
a request that breaks the protocol or a bound gets an error line, and the agent
serves the next one. Anything a library prints goes to stderr, never into the
protocol stream.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from edgetwin.common.errors import InputError
from edgetwin.common.version import package_version
from edgetwin.hil.agent import protocol as proto
from edgetwin.hil.agent.protocol import Bounds, Calibrate, Facts, ProtocolError, Session
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import ModelArch
from edgetwin.profiles.schema import from_mapping
from edgetwin.profiles.training_setup import TrainingSetup

MIB = 1024 * 1024
POLL_S = 0.02
_EOF = object()
# how large a model a session may ask for (the memory bound stops the rest)
MODEL_LIMITS = {"hidden": 65_536, "layers": 1_024, "heads": 1_024, "kv_heads": 1_024,
                "head_dim": 4_096, "intermediate": 262_144, "vocab": 1_048_576}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_agent(args)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="edgetwin agent")
    p.add_argument("--workdir", default="~/.cache/edgetwin/agent",
                   help="the only directory a request may name files in")
    p.add_argument("--threads", type=int, default=None, help="torch threads of each session")
    p.add_argument("--max-line-bytes", type=int, default=proto.DEFAULT_MAX_LINE_BYTES)
    p.add_argument("--timeout-s", type=float, default=3600.0,
                   help="wall-time bound of a request that names none")
    p.add_argument("--max-memory-mb", type=float, default=None,
                   help="memory bound of a request that names none (default: 90 %% of RAM)")
    return p


def run_agent(args: argparse.Namespace) -> int:
    workdir = Path(os.path.expanduser(args.workdir))
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    out, inp = _private_stdout(), _private_stdin()
    memory = args.max_memory_mb or 0.9 * _ram_mb()
    agent = Agent(workdir.resolve(), out, args.max_line_bytes, Bounds(args.timeout_s, memory),
                  args.threads)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    try:
        return agent.serve(inp)
    finally:
        agent.stop_child()


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _private_stdout() -> BinaryIO:
    """The protocol's own copy of stdout; file descriptor 1 then points at stderr, so
    whatever else prints (a library, a child) cannot break a message."""
    fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(fd, "wb", buffering=0)


def _private_stdin() -> BinaryIO:
    """The protocol's own copy of stdin; file descriptor 0 then reads nothing. A forked
    child closes `sys.stdin`, which would wait forever on the lock that the reader
    thread holds while it waits for the next line."""
    fd = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - replaces the process's stdin for good
    return os.fdopen(fd, "rb")


class Agent:
    def __init__(self, workdir: Path, out: BinaryIO, max_line_bytes: int, default: Bounds,
                 threads: int | None) -> None:
        self.workdir, self.out, self.limit = workdir, out, max_line_bytes
        self.default, self.threads = default, threads
        self.lines: queue.Queue[Any] = queue.Queue()
        self.closed = threading.Event()
        self.child: multiprocessing.process.BaseProcess | None = None

    def emit(self, message: dict[str, Any]) -> None:
        self.out.write(proto.encode(message))

    def serve(self, stream: BinaryIO) -> int:
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()
        self.emit(proto.event(None, "hello", agent="torch", max_line_bytes=self.limit,
                              workdir=str(self.workdir), pid=os.getpid(),
                              kinds=list(proto.KINDS)))
        while True:
            item = self.lines.get()
            if item is _EOF:
                return 0
            try:
                if isinstance(item, ProtocolError):
                    raise item
                req = proto.parse_request(proto.decode(item, self.limit), self.workdir,
                                          self.default)
                self._handle(req)
            except ProtocolError as err:
                self.emit(proto.event(err.request_id, "error", code=err.code,
                                      message=err.message))

    def _read(self, stream: BinaryIO) -> None:
        while True:
            try:
                line = proto.read_line(stream, self.limit)
            except ProtocolError as err:
                self.lines.put(err)
                continue
            except (OSError, ValueError):
                line = None
            if line is None:
                self.closed.set()
                self.lines.put(_EOF)
                return
            if line.strip():
                self.lines.put(line)

    # --- requests -------------------------------------------------------------------------
    def _handle(self, req: proto.Request) -> None:
        if isinstance(req, Facts):
            found = self._run("facts", {}, Bounds(300.0, self.default.max_memory_mb), req.id,
                              forward=False)
            worker = found.get("facts", {"torch": None, "torch_error": found.get("message")})
            self.emit(proto.event(req.id, "result", facts={**self._facts(), **worker}))
            return
        if isinstance(req, Calibrate):
            spec: dict[str, Any] = {
                "cases": [vars(c) for c in req.cases], "probes": [vars(p) for p in req.probes],
                "journal": str(proto.inside(self.workdir, req.journal, req.id))
                if req.journal else None,
                "min_time_s": req.min_time_s, "max_reps": req.max_reps, "quick": req.quick,
                "torch_device": req.torch_device}
            if req.journal:
                Path(spec["journal"]).parent.mkdir(parents=True, exist_ok=True)
            self._run(req.stage, spec, req.bounds, req.id)
            return
        assert isinstance(req, Session)
        _check_session(req)
        # the download is in: the host times its transfer up to here
        self.emit(proto.event(req.id, "received", bytes=len(req.download)))
        self._run("session", {"model": req.model, "method": req.method, "setup": req.setup,
                              "steps": req.steps, "download": req.download, "seed": req.seed,
                              "torch_device": req.torch_device}, req.bounds, req.id)

    def _run(self, task: str, spec: dict[str, Any], bounds: Bounds, rid: str,
             forward: bool = True) -> dict[str, Any]:
        """Run `task` in a child within `bounds`, forwarding its events; returns the
        terminal event (which is emitted too when `forward`)."""
        from edgetwin.hil.agent import worker

        ctx = _context(task)
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=worker.run, args=(task, spec, send, self.threads),
                            daemon=False)
        child.start()
        send.close()
        self.child = child
        deadline = time.monotonic() + bounds.timeout_s
        last: dict[str, Any] = {}
        emitted = False
        next_check = 0.0
        try:
            while True:
                if receive.poll(POLL_S):
                    try:
                        msg = receive.recv()
                    except EOFError:
                        break
                    name = msg.pop("event")
                    if forward or name not in proto.TERMINAL:
                        self.emit(proto.event(rid, name, **msg))
                        emitted = name in proto.TERMINAL
                    if name in proto.TERMINAL:
                        last = {"event": name, **msg}
                        break
                elif not child.is_alive():
                    break
                if time.monotonic() < next_check:  # the bounds, every POLL_S however busy
                    continue
                next_check = time.monotonic() + POLL_S
                used = tree_rss_mb(child.pid or 0)
                if used > bounds.max_memory_mb:
                    self.stop_child()
                    last = {"event": "error", "code": proto.MEMORY, "message":
                            f"out of memory: the request used {used:.0f} MiB, over its bound "
                            f"of {bounds.max_memory_mb:.0f} MiB; stopped"}
                    break
                if time.monotonic() > deadline:
                    self.stop_child()
                    last = {"event": "error", "code": proto.TIMEOUT, "message":
                            f"timed out after {bounds.timeout_s:g} s; stopped"}
                    break
                if self.closed.is_set():  # the host went away: stop working for it
                    self.stop_child()
                    return {}
        finally:  # also on SIGTERM/SIGHUP: no worker outlives the request
            receive.close()
            child.join(timeout=5 if last else 0.1)
            if child.is_alive():
                self.stop_child()
            self.child = None
        if not last:
            last = {"event": "error", "code": proto.FAILED,
                    "message": f"the {task} worker ended without a result "
                               f"(exit code {child.exitcode})"}
        if forward and not emitted:
            self.emit(proto.event(rid, "error", code=last["code"], message=last["message"]))
        return last

    def stop_child(self) -> None:
        child = self.child
        if child is not None and child.pid and child.is_alive():
            kill_tree(child.pid)
            child.join(timeout=5)

    def _facts(self) -> dict[str, Any]:
        from edgetwin.calibration.meters.energy import readable_meters

        cpu = ""
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith(("model name", "Hardware", "Model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        return {"runner": "torch", "os": platform.platform(), "machine": platform.machine(),
                "host": platform.node(), "cpu": cpu or platform.processor(),
                "cores": os.cpu_count() or 0, "cpus": cpus, "threads": self.threads,
                "ram_mb": round(_ram_mb(), 1), "python": platform.python_version(),
                "edgetwin": package_version(), "meters": readable_meters(),
                "workdir": str(self.workdir)}


def _check_session(req: Session) -> None:
    """The session's model, method and setup, checked before any work starts."""
    try:
        arch = from_mapping(ModelArch, req.model, "session", "model")
        method = from_mapping(Method, req.method, "session", "method")
        setup = from_mapping(TrainingSetup, req.setup, "session", "setup")
        method.validate(arch, "method")
        setup.validate("setup")
    except InputError as err:
        raise ProtocolError(proto.BAD_VALUE, f"{err.key}: {err.problem}", req.id) from None
    for key, hi in MODEL_LIMITS.items():
        if not 0 < getattr(arch, key) <= hi:
            raise ProtocolError(proto.BAD_VALUE, f"model.{key}: must be in 1..{hi}", req.id)
    if setup.batch * setup.seq > proto.MAX_DIM or setup.grad_accum > 10_000:
        raise ProtocolError(proto.BAD_VALUE, "setup: batch x seq over 2^20 tokens or "
                            "grad_accum over 10,000", req.id)


# what each kind of work imports; the agent imports it once, before its first child
PRELOAD = {"session": ("torch", "transformers", "peft"),
           "probes": ("torch", "transformers", "peft")}


def _context(task: str) -> Any:
    """Children are forked from an agent that imported the training libraries once (no
    torch op has run in it, so no thread pool is copied): a session starts in
    milliseconds, with the resident set of a trainer process."""
    for name in PRELOAD.get(task, ("torch",)):
        with contextlib.suppress(ImportError):
            __import__(name)
    return multiprocessing.get_context("fork")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total / MIB


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError, ValueError):
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def kill_tree(pid: int) -> None:
    for p in reversed(_tree(pid)):
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)


def _ram_mb() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    return 4096.0

