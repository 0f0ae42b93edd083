"""The host's end of an agent: start it through a transport, send requests, read events.

A link that breaks (the agent killed, the connection dropped, a device that goes
silent) raises `LinkError` with one line naming the device and the cause; an
`error` event from the agent raises `AgentError` with the agent's code.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

from edgetwin.hil.agent import protocol as proto
from edgetwin.hil.transports import LinkError, Transport

_EOF = object()
HOST_LINE_LIMIT = 256 * 1024 * 1024  # what the host reads of one line from a device


class AgentError(Exception):
    """The agent refused or failed a request (the link itself is fine)."""

    def __init__(self, device: str, code: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.code = code
        self.message = message


class AgentLink:
    """One running agent; requests are served one at a time, in order."""

    def __init__(self, transport: Transport, connect_timeout_s: float = 120.0) -> None:
        self.transport = transport
        self.name = transport.device.name
        self.proc = transport.start()
        self._events: queue.Queue[Any] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._ids = itertools.count(1)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        hello = self._next(connect_timeout_s)
        if hello.get("event") != "hello":
            self.close()
            raise LinkError(f"{self.name}: the agent did not introduce itself")
        self.hello = hello
        self.max_line_bytes = int(hello.get("max_line_bytes") or proto.DEFAULT_MAX_LINE_BYTES)

    def __enter__(self) -> AgentLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ------------------------------------------------------------------------
    def events(self, kind: str, silence_s: float, **fields: Any) -> Iterator[dict[str, Any]]:
        """Send a request; yield its events, the terminal one last. `silence_s` bounds
        the wait for each next event."""
        rid = f"r{next(self._ids)}"
        line = proto.encode(proto.request(kind, rid, **fields))
        if len(line) > self.max_line_bytes:
            raise LinkError(f"{self.name}: a {kind} request of {len(line)} bytes is over the "
                            f"agent's line limit of {self.max_line_bytes} bytes")
        self._write(line)
        while True:
            ev = self._next(silence_s)
            if ev.get("id") not in (rid, None):
                continue  # an answer to an earlier request given up on
            if ev.get("id") is None and ev.get("event") != "error":
                continue
            yield ev
            if ev.get("event") in proto.TERMINAL:
                return

    def call(self, kind: str, silence_s: float, **fields: Any) -> dict[str, Any]:
        """A request's `result` event, or AgentError."""
        last: dict[str, Any] = {}
        for ev in self.events(kind, silence_s, **fields):
            last = ev
        if last.get("event") == "error":
            raise AgentError(self.name, str(last.get("code")), str(last.get("message")))
        return last

    # --- plumbing ------------------------------------------------------------------------
    def _write(self, line: bytes) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(line)
            stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise self._lost() from None

    def _next(self, timeout_s: float) -> dict[str, Any]:
        try:
            item = self._events.get(timeout=timeout_s)
        except queue.Empty:
            raise LinkError(f"{self.name}: no answer for {timeout_s:g} s") from None
        if item is _EOF:
            raise self._lost()
        if isinstance(item, LinkError):
            raise item
        assert isinstance(item, dict)
        return item

    def _lost(self) -> LinkError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=3)
        return self.transport.failure(self.proc.returncode, "\n".join(self._stderr))

    def _read_stdout(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            try:
                line = proto.read_line(stream, HOST_LINE_LIMIT)  # type: ignore[arg-type]
                if line is None:
                    break
                if line.strip():
                    self._events.put(proto.decode(line, HOST_LINE_LIMIT, request=False))
            except proto.ProtocolError as err:
                self._events.put(LinkError(f"{self.name}: the agent broke the protocol "
                                           f"({err.message})"))
            except (OSError, ValueError):
                break
        self._events.put(_EOF)

    def _read_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        with contextlib.suppress(OSError, ValueError):
            for raw in stream:
                self._stderr.append(raw.decode(errors="replace").rstrip())

    def close(self) -> None:
        """Close the agent's stdin (it then stops), and kill it if it lingers."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
