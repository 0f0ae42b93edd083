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

`op` is a workload op kind (see edgetwin.profiles.ops.OP_KINDS), `flops` and `bytes` are
counted exactly as the workload model counts that op, `case` identifies the
measurement so an interrupted run can resume. Unknown keys are kept, not refused.

A calibration also journals what it measures beyond ops, as lines with a `record`
key, so that a resumed run repeats none of it either: `probe_session` (one timed
training session of a probe model: `label`, `pass`, `repeat`, `setup_s`,
`step_times_s`), `retention` (a probe's resident memory: `label`, `baseline_bytes`,
`high_water_bytes`), `host` (memory, storage and power facts) and `load` (what else ran
on the device, `before` or `after` the measurements: `other_cpu_share`, `probe_s`,
`probe_spread`, `cpus`). `probe` lines of earlier versions (one step time) are read and
not used. Readers of op measurements skip them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgetwin.calibration.load import LoadReading
from edgetwin.calibration.steps import ProbeSession
from edgetwin.common.errors import InputError
from edgetwin.profiles.ops import OP_KINDS

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
    kernels: int = 1  # kernel launches the op takes (edgetwin.profiles.ops.KERNELS)
    device: dict[str, Any] = field(default_factory=dict)
    source: str = "torch"
    peak_memory_bytes: int | None = None
    energy_j: float | None = None

    def to_json(self) -> str:
        data = {"format": FORMAT, "version": VERSION, **asdict(self)}
        data["shape"] = list(self.shape)
        return json.dumps(data, sort_keys=True)


RECORDS = ("probe", "probe_session", "retention", "host", "load")


@dataclass
class TraceRecords:
    """Everything a trace holds: op measurements and the other records, keyed."""

    measurements: list[Measurement] = field(default_factory=list)
    probes: dict[tuple[str, int], float] = field(default_factory=dict)  # (label, pass) -> s
    # (label, pass, repeat) -> the session
    probe_sessions: dict[tuple[str, int, int], ProbeSession] = field(default_factory=dict)
    retention: dict[str, tuple[int, int]] = field(default_factory=dict)  # label -> bytes
    host: dict[str, Any] | None = None
    loads: list[tuple[str, LoadReading]] = field(default_factory=list)  # (before|after, ...)


def read_trace(path: Path) -> list[Measurement]:
    """Every op measurement of a trace file; a bad line is an error naming its number."""
    return read_records(path).measurements


def read_records(path: Path) -> TraceRecords:
    out = TraceRecords()
    for number, line in _lines(path):
        record = _record_kind(line, str(path), number)
        if record is None:
            out.measurements.append(parse_line(line, str(path), number))
            continue
        d = json.loads(line)
        try:
            if record == "probe":
                out.probes[(str(d["label"]), int(d["pass"]))] = float(d["step_s"])
            elif record == "probe_session":
                out.probe_sessions[(str(d["label"]), int(d["pass"]), int(d["repeat"]))] = \
                    ProbeSession(float(d["setup_s"]),
                                 tuple(float(t) for t in d["step_times_s"]))
            elif record == "load":
                out.loads.append((str(d["phase"]), LoadReading(
                    float(d["other_cpu_share"]), float(d["probe_s"]),
                    float(d["probe_spread"]), int(d["cpus"]))))
            elif record == "retention":
                out.retention[str(d["label"])] = (int(d["baseline_bytes"]),
                                                  int(d["high_water_bytes"]))
            else:
                out.host = {k: v for k, v in d.items() if k not in ("format", "version",
                                                                     "record")}
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(str(path), f"line {number}", f"bad {record} record ({err})"
                             ) from None
    return out


def iter_trace(path: Path) -> Iterator[Measurement]:
    for number, line in _lines(path):
        if _record_kind(line, str(path), number) is None:
            yield parse_line(line, str(path), number)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise InputError(str(path), "", f"cannot read ({err.strerror})") from None
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line


def _record_kind(line: str, where: str, number: int) -> str | None:
    """None for an op measurement, else which record the line is."""
    if '"record"' not in line:
        return None
    try:
        d = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(where, f"line {number}", f"not JSON ({err.msg})") from None
    record = d.get("record") if isinstance(d, dict) else None
    if record is None:
        return None
    if record not in RECORDS:
        raise InputError(where, f"line {number}", f"unknown record {record!r} (known: "
                         f"{', '.join(RECORDS)})")
    if d.get("format") != FORMAT or d.get("version") != VERSION:
        raise InputError(where, f"line {number}", f"format must be {FORMAT!r} version "
                         f"{VERSION}")
    return str(record)


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
        self.write_line(m.to_json())

    def write_record(self, record: str, **fields: Any) -> None:
        self.write_line(json.dumps({"format": FORMAT, "version": VERSION, "record": record,
                                    **fields}, sort_keys=True))

    def write_line(self, line: str) -> None:
        self._fh.write(line.rstrip("\n") + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
