"""Jetson `tegrastats` lines: memory, CPU and GPU load, temperatures, power rails.

Handles JetPack 4 (bare numbers `POM_5V_IN 1943/1943`) and JetPack 5+ (`VDD_IN
4938mW/4938mW`) rails, a third value where a release prints one, `off` cores,
`-256C` for sensors that are offline, per-GPC `GR3D_FREQ 0%@[305,305]` lists and a
leading timestamp. Total power is `VDD_IN` or `POM_5V_IN` where the board reports
one; it is never the sum of rails, which overlap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgetwin.common.errors import InputError

_STAMP = re.compile(r"^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[([\d,]+)\]|@(\d+))?")
_TEMP = re.compile(r"\b([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
OFFLINE_C = -256.0


@dataclass(frozen=True)
class Rail:
    now_mw: float
    avg_mw: float
    max_mw: float | None = None


@dataclass(frozen=True)
class TegraSample:
    timestamp: str | None
    ram_used_mb: int | None
    ram_total_mb: int | None
    cpu: list[tuple[int, int | None] | None]  # (load %, MHz) per core; None for an off core
    gpu_load_pct: int | None
    gpu_freq_mhz: list[int]
    temps_c: dict[str, float | None]  # None for an offline sensor
    rails: dict[str, Rail] = field(default_factory=dict)

    @property
    def total_mw(self) -> float | None:
        for name in TOTAL_RAILS:
            if name in self.rails:
                return self.rails[name].now_mw
        return None


def parse_line(line: str, where: str = "tegrastats", number: int = 1) -> TegraSample:
    text = line.strip()
    stamp = _STAMP.match(text)
    ram = _RAM.search(text)
    rails = {m.group(1): Rail(float(m.group(2)), float(m.group(3)),
                              float(m.group(4)) if m.group(4) else None)
             for m in _RAIL.finditer(text)}
    if ram is None and not rails:
        raise InputError(where, f"line {number}", "not a tegrastats line (no RAM, no rails)")
    cpu: list[tuple[int, int | None] | None] = []
    cpu_match = _CPU.search(text)
    if cpu_match:
        for entry in cpu_match.group(1).split(","):
            entry = entry.strip()
            if entry == "off":
                cpu.append(None)
                continue
            m = re.fullmatch(r"(\d+)%(?:@(\d+))?", entry)
            if m is None:
                raise InputError(where, f"line {number}", f"bad CPU entry {entry!r}")
            cpu.append((int(m.group(1)), int(m.group(2)) if m.group(2) else None))
    gr3d = _GR3D.search(text)
    freqs: list[int] = []
    if gr3d and gr3d.group(2):
        freqs = [int(x) for x in gr3d.group(2).split(",")]
    elif gr3d and gr3d.group(3):
        freqs = [int(gr3d.group(3))]
    temps: dict[str, float | None] = {}
    for m in _TEMP.finditer(text):
        value = float(m.group(2))
        temps[m.group(1)] = None if value <= OFFLINE_C else value
    return TegraSample(
        timestamp=stamp.group(1) if stamp else None,
        ram_used_mb=int(ram.group(1)) if ram else None,
        ram_total_mb=int(ram.group(2)) if ram else None,
        cpu=cpu, gpu_load_pct=int(gr3d.group(1)) if gr3d else None, gpu_freq_mhz=freqs,
        temps_c=temps, rails=rails)


def energy_j(samples: list[TegraSample], interval_s: float) -> float | None:
    """Board energy over samples taken every `interval_s`; None without a total rail."""
    totals = [s.total_mw for s in samples]
    if not totals or any(t is None for t in totals):
        return None
    return sum(t for t in totals if t is not None) / 1000.0 * interval_s
