"""Transports by kind: how the host reaches an attached device."""

from __future__ import annotations

from edgetwin.hil.inventory import Device
from edgetwin.hil.transports.adb import AdbTransport
from edgetwin.hil.transports.base import LinkError, Transport
from edgetwin.hil.transports.local import LocalTransport
from edgetwin.hil.transports.ssh import SshTransport

TRANSPORTS: dict[str, type[Transport]] = {"local": LocalTransport, "ssh": SshTransport,
                                          "adb": AdbTransport}

__all__ = ["TRANSPORTS", "LinkError", "Transport", "transport_for"]


def transport_for(device: Device) -> Transport:
    return TRANSPORTS[device.transport.kind](device)
