"""`edgetwin devices check`: connect to each device and say what it is and can measure."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edgetwin.hil.inventory import Device, Inventory, LocalConfig, SshConfig
from edgetwin.hil.link import AgentError, AgentLink
from edgetwin.hil.transports import LinkError, transport_for

COLUMNS = ("device", "transport", "reachable", "os", "cpu", "cores", "RAM MiB",
           "torch / runner", "GPU", "meters", "stands for")


def check_device(device: Device) -> dict[str, Any]:
    """One row: what the device's agent says of itself, or why it could not."""
    row: dict[str, Any] = {"device": device.name, "transport": _transport(device)}
    profile = device.profile or "-"
    try:
        loaded = device.load_profile()
        row["stands for"] = loaded.name if loaded else f"{profile} (not calibrated yet)"
    except Exception as err:  # a broken profile file is reported in the row, not raised
        row["stands for"] = f"{profile} ({err})"
    try:
        with AgentLink(transport_for(device), connect_timeout_s=120.0) as link:
            facts = link.call("facts", 300.0)["facts"]
    except (LinkError, AgentError) as err:
        row["reachable"] = f"no: {err}"
        return row
    row["reachable"] = "yes"
    row["os"] = facts.get("os", "?")
    row["cpu"] = facts.get("cpu", "?")
    cpus = facts.get("cpus") or []
    row["cores"] = f"{len(cpus)} of {facts.get('cores')}" if cpus and len(cpus) != \
        facts.get("cores") else str(facts.get("cores", "?"))
    row["RAM MiB"] = f"{facts.get('ram_mb', 0):,.0f}"
    if facts.get("runner") == "native":
        row["torch / runner"] = f"native {facts.get('build', '?')}"
    elif facts.get("torch"):
        threads = f", {facts['threads']} threads" if facts.get("threads") else ""
        row["torch / runner"] = f"torch {facts['torch']}{threads}"
    else:
        row["torch / runner"] = f"no torch ({facts.get('torch_error') or 'not importable'})"
    row["GPU"] = facts.get("gpu") or "-"
    row["meters"] = ", ".join(facts.get("meters") or []) or "-"
    row["facts"] = facts
    return row


def check_all(inventory: Inventory, names: list[str] | None = None) -> list[dict[str, Any]]:
    devices = [inventory.get(n) for n in names] if names else list(inventory.devices)
    with ThreadPoolExecutor(max_workers=max(1, len(devices))) as pool:
        return list(pool.map(check_device, devices))


def _transport(d: Device) -> str:
    t = d.transport
    if isinstance(t, LocalConfig):
        where = f"local cpus {','.join(map(str, t.cpus))}" if t.cpus else "local"
    elif isinstance(t, SshConfig):
        where = f"ssh {t.host}"
    else:
        where = f"adb {t.serial}"
    return f"{where} ({d.runner.kind}{', cuda' if d.runner.torch_device == 'cuda' else ''})"
