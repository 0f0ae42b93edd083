"""`ssh`: a device reached with the system's OpenSSH client.

The user's ~/.ssh/config, agent, jump hosts and known_hosts apply as they do for
`ssh` itself. Host keys are checked strictly: an unknown or changed key is
refused with a line that says how to check and record it, never accepted
silently. Password prompts are off (BatchMode): a device is reached by key.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgetwin.hil.inventory import Device, SshConfig
from edgetwin.hil.transports.base import LinkError, Transport, shell_join, shell_path


class SshTransport(Transport):
    def __init__(self, device: Device) -> None:
        super().__init__(device)
        assert isinstance(device.transport, SshConfig)
        self.config = device.transport

    @property
    def workdir(self) -> str:
        return self.config.workdir.rstrip("/") or "/"

    def options(self) -> list[str]:
        c = self.config
        opts = ["-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={max(1, round(c.connect_timeout_s))}",
                # a dropped link is noticed within about 15 s, not at the next TCP timeout
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if c.port is not None:
            opts += ["-p", str(c.port)]
        if c.user is not None:
            opts += ["-l", c.user]
        if c.identity is not None:
            opts += ["-i", os.path.expanduser(c.identity), "-o", "IdentitiesOnly=yes"]
        if c.known_hosts is not None:
            opts += ["-o", f"UserKnownHostsFile={os.path.expanduser(c.known_hosts)}"]
        for key, value in (c.options or {}).items():
            opts += ["-o", f"{key}={value}"]
        return opts

    def command(self, argv: list[str]) -> list[str]:
        return ["ssh", *self.options(), self.config.host, "--", shell_join(argv)]

    def push(self, local: Path, remote: str) -> None:
        parent = remote.rsplit("/", 1)[0] or "/"
        script = f"mkdir -p {shell_path(parent)} && cat > {shell_path(remote)}"
        self.run(["sh", "-c", script], input=local.read_bytes())

    def pull(self, remote: str, local: Path) -> None:
        local.write_bytes(self.client(self.command(["cat", remote])))

    def failure(self, returncode: int | None, stderr: str) -> LinkError:
        c, name = self.config, self.device.name
        where = f"{c.host}{f':{c.port}' if c.port else ''}"
        scan = f"ssh-keyscan {f'-p {c.port} ' if c.port else ''}{c.host}"
        known = c.known_hosts or "~/.ssh/known_hosts"
        if "IDENTIFICATION HAS CHANGED" in stderr:
            return LinkError(
                f"{name}: the host key of {where} has CHANGED since it was recorded in "
                f"{known}: refusing to connect (if the device was reinstalled, check the new "
                f"key's fingerprint, then remove the old one with ssh-keygen -R {c.host})",
                permanent=True)
        if "Host key verification failed" in stderr or "host key is known" in stderr:
            return LinkError(
                f"{name}: the host key of {where} is not known (no entry in {known}): check "
                f"its fingerprint on the device, then record it ({scan} >> {known}); edgetwin "
                "never accepts a host key by itself", permanent=True)
        if "Permission denied" in stderr:
            key = f"the key {c.identity}" if c.identity else "your keys"
            return LinkError(f"{name}: {where} refused {key} (Permission denied): check "
                             "`identity` and the device's ~/.ssh/authorized_keys",
                             permanent=True)
        if returncode == 255:
            last = [line for line in stderr.strip().splitlines() if line.strip()]
            why = last[-1].strip() if last else "ssh exit status 255"
            return LinkError(f"{name}: cannot reach {where} ({why})")
        return super().failure(returncode, stderr)
