"""Linux RAPL energy counters (/sys/class/powercap/intel-rapl:*): microjoules that wrap."""

from __future__ import annotations

from pathlib import Path

from edgetwin.common.errors import InputError


def read_counter(path: Path) -> int:
    text = path.read_text().strip()
    if not text.isdigit():
        raise InputError(str(path), "", f"expected an integer microjoule count, got {text!r}")
    return int(text)


def delta_j(start_uj: int, end_uj: int, max_range_uj: int) -> float:
    """Energy between two readings; a counter that passed `max_energy_range_uj` wrapped once."""
    if end_uj < start_uj:
        end_uj += max_range_uj + 1
    return (end_uj - start_uj) / 1e6


class Rapl:
    """One RAPL domain (package by default); `None` from `find` where there is none."""

    def __init__(self, domain: Path) -> None:
        self.domain = domain
        self.max_range_uj = read_counter(domain / "max_energy_range_uj")

    @classmethod
    def find(cls, root: Path = Path("/sys/class/powercap")) -> Rapl | None:
        for domain in sorted(root.glob("intel-rapl:*")):
            if (domain / "energy_uj").exists():
                try:
                    cls(domain).read()
                    return cls(domain)
                except (OSError, InputError):
                    return None
        return None

    def read(self) -> int:
        return read_counter(self.domain / "energy_uj")

    def energy_j(self, start_uj: int, end_uj: int) -> float:
        return delta_j(start_uj, end_uj, self.max_range_uj)
