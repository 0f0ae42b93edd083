"""/proc/<pid>/status memory lines (VmRSS, VmHWM, ...), in bytes."""

from __future__ import annotations

from pathlib import Path

from edgetwin.common.errors import InputError


def read_status(text: str, where: str) -> dict[str, int]:
    """The `Vm*`/`Rss*` fields of a status file, converted from kB to bytes."""
    out: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        key, sep, rest = line.partition(":")
        if not sep or not (key.startswith("Vm") or key.startswith("Rss")):
            continue
        parts = rest.split()
        if len(parts) != 2 or parts[1] != "kB" or not parts[0].isdigit():
            raise InputError(where, f"line {number}", f"expected '{key}: <n> kB', got {line!r}")
        out[key] = int(parts[0]) * 1024
    if "VmRSS" not in out:
        raise InputError(where, "VmRSS", "missing")
    return out


def process_memory(pid: int | str = "self") -> dict[str, int]:
    path = Path(f"/proc/{pid}/status")
    return read_status(path.read_text(), str(path))


def reset_peak(pid: int | str = "self") -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); false where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False
