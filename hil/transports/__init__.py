"""Transports by kind: how the host reaches an attached device."""

from __future__ import annotations

from hil.inventory import Device
from hil.transports.adb import AdbTransport
from hil.transports.base import LinkError, Transport
from hil.transports.local import LocalTransport
from hil.transports.ssh import SshTransport

TRANSPORTS: dict[str, type[Transport]] = {"local": LocalTransport, "ssh": SshTransport,
                                          "adb": AdbTransport}

__all__ = ["TRANSPORTS", "LinkError", "Transport", "transport_for"]


def transport_for(device: Device) -> Transport:
    return TRANSPORTS[device.transport.kind](device)
