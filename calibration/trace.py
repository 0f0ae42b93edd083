"""The measurement trace: versioned JSON lines, one measurement a line.

Any measuring program (the PyTorch op suite, the native C++ benchmark, a user's
own) can feed calibration by writing this format. A line is one JSON object:

    {"format": "edgetwin-trace", "version": 1, "case": "matmul/forward/256x768x768",
     "op": "matmul", "phase": "forward", "shape": [256, 768, 768], "dtype": "fp32",
     "flops": 301989888.0, "bytes": 3932160.0, "kernels": 1,
     "latency_s": {"median": 0.0021, "min": 0.0020, "max": 0.0025, "mean": 0.0021,
                   "std": 0.0001, "reps": 20},
     "peak_memory_bytes": 12582912, "energy_j": null,
     "device": {"host": "...", "threads": 2, "torch": "2.13.0", ...}, "source": "torch"}

`op` is a workload op kind (see profiles.ops.OP_KINDS), `flops` and `bytes` are
counted exactly as the workload model counts that op, `case` identifies the
measurement so an interrupted run can resume. Unknown keys are kept, not refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from profiles.errors import InputError
from profiles.ops import OP_KINDS

FORMAT = "edgetwin-trace"
VERSION = 1
PHASES = ("forward", "backward", "optimizer")


@dataclass(frozen=True)
class Latency:
    median: float
    min: float
    max: float
    mean: float
    std: float
    reps: int


@dataclass(frozen=True)
class Measurement:
    case: str
    op: str
    phase: str
    shape: tuple[int, ...]
    dtype: str
    flops: float
    bytes: float
    latency_s: Latency
    kernels: int = 1  # kernel launches the op takes (profiles.ops.KERNELS)
    device: dict[str, Any] = field(default_factory=dict)
    source: str = "torch"
    peak_memory_bytes: int | None = None
    energy_j: float | None = None

    def to_json(self) -> str:
        data = {"format": FORMAT, "version": VERSION, **asdict(self)}
        data["shape"] = list(self.shape)
        return json.dumps(data, sort_keys=True)


def read_trace(path: Path) -> list[Measurement]:
    """Every measurement of a trace file; a bad line is an error naming its number."""
    return list(iter_trace(path))


def iter_trace(path: Path) -> Iterator[Measurement]:
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise InputError(str(path), "", f"cannot read ({err.strerror})") from None
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield parse_line(line, f"{path}", number)


def parse_line(line: str, where: str, number: int) -> Measurement:
    key = f"line {number}"
    try:
        d = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(where, key, f"not JSON ({err.msg})") from None
    if not isinstance(d, dict):
        raise InputError(where, key, "expected a JSON object")
    if d.get("format") != FORMAT:
        raise InputError(where, key, f"format must be {FORMAT!r}")
    if d.get("version") != VERSION:
        raise InputError(where, key, f"version {d.get('version')!r} is not {VERSION}")
    try:
        lat = d["latency_s"]
        m = Measurement(
            case=str(d["case"]), op=str(d["op"]), phase=str(d["phase"]),
            shape=tuple(int(x) for x in d["shape"]), dtype=str(d["dtype"]),
            flops=float(d["flops"]), bytes=float(d["bytes"]),
            latency_s=Latency(float(lat["median"]), float(lat["min"]), float(lat["max"]),
                              float(lat["mean"]), float(lat["std"]), int(lat["reps"])),
            kernels=int(d.get("kernels", 1)),
            device=dict(d.get("device") or {}), source=str(d.get("source", "")),
            peak_memory_bytes=None if d.get("peak_memory_bytes") is None
            else int(d["peak_memory_bytes"]),
            energy_j=None if d.get("energy_j") is None else float(d["energy_j"]))
    except KeyError as err:
        raise InputError(where, key, f"missing {err.args[0]!r}") from None
    except (TypeError, ValueError) as err:
        raise InputError(where, key, f"bad value ({err})") from None
    if m.op not in OP_KINDS:
        raise InputError(where, key, f"unknown op {m.op!r}")
    if m.phase not in PHASES:
        raise InputError(where, key, f"unknown phase {m.phase!r}")
    med = m.latency_s.median
    if not (med > 0 and math.isfinite(med)) or m.flops < 0 or m.bytes < 0:
        raise InputError(where, key, "latency must be > 0, flops and bytes >= 0")
    return m


class TraceWriter:
    """Appends measurements, flushed line by line, so an interruption loses nothing."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = path.open("a")

    def write(self, m: Measurement) -> None:
        self._fh.write(m.to_json() + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
