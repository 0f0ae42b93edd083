"""What every transport gives: start the agent, run one command, copy files both ways.

A transport only moves bytes and starts programs; it never interprets what the
agent says. Its failures become one line that names the device and says what to
do (`LinkError`), never a traceback.
"""

from __future__ import annotations

import shlex
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from edgetwin.hil.inventory import Device

RUNNER_BINARY = "edgetwin-runner"  # the native runner's file name in a device's work dir


class LinkError(Exception):
    """The device could not be reached or its link broke; the message is one line.
    `permanent` where trying again cannot help (a refused key, an unknown host key)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(ABC):
    def __init__(self, device: Device) -> None:
        self.device = device

    @property
    @abstractmethod
    def workdir(self) -> str:
        """The agent's work directory on the device, as the device's shell spells it."""

    @abstractmethod
    def command(self, argv: list[str]) -> list[str]:
        """The local argv that runs `argv` on the device, stdin and stdout connected."""

    @abstractmethod
    def push(self, local: Path, remote: str) -> None:
        """Copy a local file to `remote` on the device."""

    @abstractmethod
    def pull(self, remote: str, local: Path) -> None:
        """Copy `remote` from the device to a local file."""

    def failure(self, returncode: int | None, stderr: str) -> LinkError:
        """Why the link failed, in one line, from what the client printed."""
        last = [line for line in stderr.strip().splitlines() if line.strip()]
        why = last[-1].strip() if last else f"exit status {returncode}"
        if returncode in (126, 127):  # the shell found no agent to run
            return LinkError(f"{self.device.name}: the agent is not installed on the device "
                             f"({why}): run edgetwin devices install", permanent=True)
        if "No module named" in why and "edgetwin" in why:  # a venv of an older layout
            return LinkError(f"{self.device.name}: the agent installed on the device is of "
                             f"another edgetwin ({why}): run edgetwin devices install again",
                             permanent=True)
        return LinkError(f"{self.device.name}: the link failed ({why})")

    def agent_argv(self) -> list[str]:
        """The device-side command that starts the agent (or the native runner)."""
        wd = self.workdir
        if self.device.runner.kind == "native":
            return [f"{wd}/{RUNNER_BINARY}", "--agent", "--workdir", wd]
        return [f"{wd}/venv/bin/python", "-m", "edgetwin.hil.agent", "--workdir", wd]

    def start(self, argv: list[str] | None = None) -> subprocess.Popen[bytes]:
        """Start the agent with its stdin and stdout piped to us, in a session of its
        own, so that Ctrl-C at the user's terminal reaches edgetwin, which then stops
        it cleanly."""
        preexec, env = self.child_setup()
        try:
            return subprocess.Popen(self.command(argv or self.agent_argv()),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True,
                                    preexec_fn=preexec, env=env)
        except OSError as err:
            raise LinkError(f"{self.device.name}: cannot start {err.filename or 'the client'} "
                            f"({err.strerror})") from None

    def child_setup(self) -> tuple[Callable[[], None] | None, dict[str, str] | None]:
        """What the local client process needs before it starts: a function run in it
        (CPU pinning) and its environment (None: ours)."""
        return None, None

    def run(self, argv: list[str], input: bytes | None = None,
            timeout_s: float = 600.0) -> str:
        """Run one command on the device; its stdout, or a LinkError naming why not."""
        return self.client(self.command(argv), input, timeout_s).decode(errors="replace")

    def client(self, cmd: list[str], input: bytes | None = None,
               timeout_s: float = 600.0) -> bytes:
        """Run the local client program (`ssh`, `adb`, ...) once; its stdout, or a
        LinkError naming why not."""
        preexec, env = self.child_setup()
        try:
            out = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout_s,
                                 start_new_session=True, preexec_fn=preexec, env=env)
        except subprocess.TimeoutExpired:
            raise LinkError(f"{self.device.name}: {shlex.join(cmd)[:80]} did not finish in "
                            f"{timeout_s:g} s") from None
        except OSError as err:
            raise LinkError(f"{self.device.name}: cannot start {err.filename or 'the client'} "
                            f"({err.strerror})") from None
        if out.returncode != 0:
            raise self.failure(out.returncode, out.stderr.decode(errors="replace"))
        return out.stdout


def shell_join(argv: list[str]) -> str:
    """One POSIX shell command line of `argv`, each word quoted (see `shell_path`)."""
    return " ".join(shell_path(a) for a in argv)


def shell_path(path: str) -> str:
    """A path for a POSIX shell: quoted, with a leading `~/` left to the shell."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)
