"""`adb`: an Android device reached with the `adb` client: `push` to install the
native runner, `shell` for the agent's stream, `pull` for the runner's own copy of
a trace after a dropped link."""

from __future__ import annotations

from pathlib import Path

from edgetwin.hil.inventory import AdbConfig, Device
from edgetwin.hil.transports.base import LinkError, Transport, shell_join


class AdbTransport(Transport):
    def __init__(self, device: Device) -> None:
        super().__init__(device)
        assert isinstance(device.transport, AdbConfig)
        self.config = device.transport

    @property
    def workdir(self) -> str:
        return self.config.workdir.rstrip("/") or "/"

    def _adb(self, *args: str) -> list[str]:
        return [self.config.adb, "-s", self.config.serial, *args]

    def command(self, argv: list[str]) -> list[str]:
        # `adb shell -T`: no terminal, so the stream is passed through byte for byte
        return self._adb("shell", "-T", shell_join(argv))

    def push(self, local: Path, remote: str) -> None:
        parent = remote.rsplit("/", 1)[0] or "/"
        self.run(["mkdir", "-p", parent])
        self.client(self._adb("push", str(local), remote))

    def pull(self, remote: str, local: Path) -> None:
        self.client(self._adb("pull", remote, str(local)))

    def failure(self, returncode: int | None, stderr: str) -> LinkError:
        s, name = self.config.serial, self.device.name
        if "unauthorized" in stderr:
            return LinkError(f"{name}: adb device {s} has not authorized this computer: "
                             "accept the prompt on the phone", permanent=True)
        if "not found" in stderr and "device" in stderr:
            return LinkError(f"{name}: adb device {s} is not attached (is it listed by "
                             "`adb devices`?)")
        if "offline" in stderr:
            return LinkError(f"{name}: adb device {s} is offline (reconnect its cable)")
        return super().failure(returncode, stderr)
