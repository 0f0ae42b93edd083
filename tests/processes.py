"""Starting a command the way a terminal does, so that a test can press Ctrl-C on it."""

from __future__ import annotations

import signal
import subprocess


def start_interruptible(cmd: list[str]) -> subprocess.Popen[str]:
    """Start `cmd` with SIGINT at its default disposition.

    A test runner started in the background (`make test &`) ignores SIGINT, and a child
    inherits that: Python would then never raise KeyboardInterrupt in it."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
