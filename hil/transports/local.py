"""`local`: the agent as a child process of this host, pinned to a CPU set, with its
own number of torch threads, so that one host can stand for several device classes."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from edgetwin.hil.inventory import Device, LocalConfig
from edgetwin.hil.transports.base import RUNNER_BINARY, LinkError, Transport


class LocalTransport(Transport):
    def __init__(self, device: Device) -> None:
        super().__init__(device)
        assert isinstance(device.transport, LocalConfig)
        self.config = device.transport

    @property
    def workdir(self) -> str:
        return os.path.expanduser(self.config.workdir or
                                  f"~/.cache/edgetwin/devices/{self.device.name}")

    @property
    def cpus(self) -> list[int]:
        if self.config.cpus is not None:
            return list(self.config.cpus)
        return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

    @property
    def threads(self) -> int:
        return self.config.threads or max(1, len(self.cpus))

    def agent_argv(self) -> list[str]:
        if self.device.runner.kind == "native":
            return [f"{self.workdir}/{RUNNER_BINARY}", "--agent", "--workdir", self.workdir]
        # this installation is the agent: nothing to install
        return [sys.executable, "-m", "edgetwin.hil.agent", "--workdir", self.workdir,
                "--threads", str(self.threads)]

    def command(self, argv: list[str]) -> list[str]:
        return argv

    def child_setup(self) -> tuple[Callable[[], None] | None, dict[str, str] | None]:
        cpus = self.cpus

        def pin() -> None:  # runs in the child before it starts the agent
            if cpus and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, cpus)

        return pin, {**os.environ, "OMP_NUM_THREADS": str(self.threads)}

    def push(self, local: Path, remote: str) -> None:
        try:
            Path(remote).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, remote)
        except OSError as err:
            raise LinkError(f"{self.device.name}: cannot copy to {remote} ({err.strerror})"
                            ) from None

    def pull(self, remote: str, local: Path) -> None:
        try:
            shutil.copyfile(remote, local)
        except OSError as err:
            raise LinkError(f"{self.device.name}: cannot copy {remote} ({err.strerror})"
                            ) from None
