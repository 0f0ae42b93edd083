"""Starting a command the way a terminal does, so that a test can press Ctrl-C on it."""

from __future__ import annotations

import select
import signal
import subprocess
import time
from typing import IO


def start_interruptible(cmd: list[str]) -> subprocess.Popen[str]:
    """Start `cmd` with SIGINT at its default disposition.

    A test runner started in the background (`make test &`) ignores SIGINT, and a child
    inherits that: Python would then never raise KeyboardInterrupt in it."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_line(stream: IO[str], text: str, timeout_s: float) -> str:
    """The first line of `stream` containing `text`, read for at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([stream], [], [], left)
        if not ready:
            break
        line = stream.readline()
        if not line:
            break
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r} within {timeout_s} s")
