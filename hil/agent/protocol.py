"""The agent protocol: versioned JSON lines over the agent's stdin and stdout.

The host writes one request a line; the agent answers with events, one a line,
each carrying the request's `id`, and ends every request with exactly one
terminal event, `result` or `error`. After an error the agent serves the next
request. Nothing in a message is ever run as code or as a shell command: a
request names a kind from `KINDS` and data, checked here field by field.
The full description, for other implementations (the native runner), is in
docs/devices.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from edgetwin.calibration.opsuite import Case

PROTOCOL = "edgetwin-agent"
VERSION = 1
KINDS = ("facts", "calibrate", "session")
STAGES = ("ops", "probes", "retention", "host", "load")
TERMINAL = ("result", "error")
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
# error codes: what the host may act on
BAD_JSON, TOO_LARGE, BAD_VERSION, UNKNOWN_KIND, BAD_VALUE, BAD_PATH = (
    "bad_json", "too_large", "bad_version", "unknown_kind", "bad_value", "bad_path")
MEMORY, TIMEOUT, FAILED = "memory", "timeout", "failed"

# bounds on what one request may ask of a device
MAX_STEPS = 100_000
MAX_DIM = 1 << 20
MAX_TIMEOUT_S = 7 * 86400.0


class ProtocolError(Exception):
    """A message that breaks the protocol: answered with an `error` event."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode()


def event(request_id: str | None, name: str, **fields: Any) -> dict[str, Any]:
    return {"protocol": PROTOCOL, "version": VERSION, "id": request_id, "event": name,
            **fields}


def request(kind: str, request_id: str, **fields: Any) -> dict[str, Any]:
    return {"protocol": PROTOCOL, "version": VERSION, "id": request_id, "kind": kind,
            **fields}


def read_line(stream: BinaryIO, limit: int) -> bytes | None:
    """The next line without its newline; None at end of stream. A line longer than
    `limit` is read to its end and discarded (never held whole), then refused."""
    line = stream.readline(limit + 1)
    if not line:
        return None
    if line.endswith(b"\n") or len(line) <= limit:
        return line.rstrip(b"\r\n")
    size = len(line)
    while True:
        more = stream.readline(1 << 20)
        size += len(more)
        if not more or more.endswith(b"\n"):
            raise ProtocolError(TOO_LARGE, f"line of {size} bytes or more exceeds the limit "
                                f"of {limit} bytes")


def decode(line: bytes, limit: int, request: bool = True) -> dict[str, Any]:
    """A line as a checked envelope: JSON object, this protocol, this version, and (for
    a request) an id."""
    if len(line) > limit:
        raise ProtocolError(TOO_LARGE, f"line of {len(line)} bytes exceeds the limit of "
                            f"{limit} bytes")
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(BAD_JSON, f"not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ProtocolError(BAD_JSON, "expected a JSON object")
    rid = data.get("id")
    rid = rid if isinstance(rid, str) and 0 < len(rid) <= 128 else None
    if data.get("protocol") != PROTOCOL:
        raise ProtocolError(BAD_VERSION, f"protocol must be {PROTOCOL!r}", rid)
    if data.get("version") != VERSION:
        raise ProtocolError(BAD_VERSION, f"protocol version {data.get('version')!r} is not "
                            f"{VERSION}", rid)
    if rid is None and request:
        raise ProtocolError(BAD_VALUE, "id: expected text of 1-128 characters")
    return data


# --- requests -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bounds:
    """What one request may take of the device before the agent stops it."""

    timeout_s: float
    max_memory_mb: float


@dataclass(frozen=True)
class ProbeSpec:
    """Probe training sessions: model, method, batch x sequence, steps to time after the
    warm-up, sessions (`repeats`, each in a process of its own)."""

    arch: dict[str, Any]
    method: dict[str, Any]
    batch: int
    seq: int
    steps: int
    seed: int
    repeats: int = 1


@dataclass(frozen=True)
class Facts:
    id: str


@dataclass(frozen=True)
class Calibrate:
    id: str
    stage: str
    bounds: Bounds
    cases: tuple[Case, ...] = ()
    probes: tuple[ProbeSpec, ...] = ()
    journal: str | None = None  # relative to the work directory: the device's own copy
    min_time_s: float = 0.05
    max_reps: int = 30
    quick: bool = True
    torch_device: str = "cpu"


@dataclass(frozen=True)
class Session:
    """A training session: download, `steps` optimizer steps, upload."""

    id: str
    bounds: Bounds
    model: dict[str, Any]
    method: dict[str, Any]
    setup: dict[str, Any]
    steps: int
    download: bytes
    seed: int
    torch_device: str = "cpu"
    ops: tuple[dict[str, Any], ...] = field(default=())  # the native runner's op list


Request = Facts | Calibrate | Session


def parse_request(data: dict[str, Any], workdir: Path, default: Bounds) -> Request:
    """A request from its envelope; every field checked, unknown fields refused."""
    rid = str(data["id"])
    kind = data.get("kind")
    if kind not in KINDS:
        raise ProtocolError(UNKNOWN_KIND, f"unknown kind {kind!r} (known: {', '.join(KINDS)})",
                            rid)
    f = _Fields(data, rid, {"protocol", "version", "id", "kind"})
    if kind == "facts":
        f.done()
        return Facts(rid)
    bounds = Bounds(f.number("timeout_s", 0.1, MAX_TIMEOUT_S, default.timeout_s),
                    f.number("max_memory_mb", 1.0, 1e9, default.max_memory_mb))
    torch_device = f.choice("torch_device", ("cpu", "cuda"), "cpu")
    if kind == "calibrate":
        stage = f.choice("stage", STAGES, None)
        journal = f.text("journal", None)
        if journal is not None:
            inside(workdir, journal, rid)
        cases = tuple(_case(c, rid, i) for i, c in enumerate(f.items("cases")))
        probes = tuple(_probe(p, rid, i) for i, p in enumerate(f.items("probes")))
        calibrate = Calibrate(rid, stage, bounds, cases, probes, journal,
                        f.number("min_time_s", 0.0, 60.0, 0.05),
                        int(f.number("max_reps", 1, 10_000, 30, integer=True)),
                        f.flag("quick", True), torch_device)
        f.done()
        return calibrate
    download = f.mapping("download")
    payload = _payload(download, rid)
    ops = tuple(f.items("ops"))
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise ProtocolError(BAD_VALUE, f"ops[{i}]: expected an object", rid)
    req = Session(rid, bounds, f.mapping("model"), f.mapping("method"), f.mapping("setup"),
                  int(f.number("steps", 1, MAX_STEPS, None, integer=True)), payload,
                  int(f.number("seed", 0, 2**63 - 1, 0, integer=True)), torch_device, ops)
    f.done()
    return req


def inside(workdir: Path, name: str, rid: str | None = None) -> Path:
    """`name` resolved under the work directory; anything that leaves it is refused."""
    if not name or "\x00" in name or Path(name).is_absolute():
        raise ProtocolError(BAD_PATH, f"path {name!r} is outside the work directory", rid)
    root = workdir.resolve()
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise ProtocolError(BAD_PATH, f"path {name!r} is outside the work directory", rid)
    return target


def payload_field(data: bytes) -> dict[str, Any]:
    """How a payload travels inside a message: its size, hash and base64 text."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "data": base64.b64encode(data).decode()}


def _payload(d: dict[str, Any], rid: str) -> bytes:
    f = _Fields(d, rid, set(), prefix="download.")
    size = int(f.number("bytes", 0, 1 << 40, None, integer=True))
    digest = f.text("sha256", None)
    text = f.text("data", None)
    f.done()
    if text is None or digest is None:
        raise ProtocolError(BAD_VALUE, "download: needs bytes, sha256 and data", rid)
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise ProtocolError(BAD_VALUE, "download.data: not base64", rid) from None
    if len(data) != size:
        raise ProtocolError(BAD_VALUE, f"download: {len(data)} bytes arrived, {size} announced",
                            rid)
    if hashlib.sha256(data).hexdigest() != digest:
        raise ProtocolError(BAD_VALUE, "download: sha256 does not match the data", rid)
    return data


def _case(c: Any, rid: str, i: int) -> Case:
    if not isinstance(c, dict):
        raise ProtocolError(BAD_VALUE, f"cases[{i}]: expected an object", rid)
    f = _Fields(c, rid, set(), prefix=f"cases[{i}].")
    shape = f.items("shape")
    if not 1 <= len(shape) <= 6 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 1 << 34 for d in shape):
        raise ProtocolError(BAD_VALUE, f"cases[{i}].shape: expected 1-6 positive integers",
                            rid)
    spec = Case(f.text("op", None) or "", f.text("impl", None) or "",
                    f.text("phase", None) or "", tuple(shape),
                    f.number("flops", 0.0, 1e18, None), f.number("bytes", 0.0, 1e15, None),
                    int(f.number("kernels", 0, 10_000, 1, integer=True)))
    f.done()
    return spec


def _probe(p: Any, rid: str, i: int) -> ProbeSpec:
    if not isinstance(p, dict):
        raise ProtocolError(BAD_VALUE, f"probes[{i}]: expected an object", rid)
    f = _Fields(p, rid, set(), prefix=f"probes[{i}].")
    spec = ProbeSpec(f.mapping("arch"), f.mapping("method"),
                     int(f.number("batch", 1, MAX_DIM, None, integer=True)),
                     int(f.number("seq", 1, MAX_DIM, None, integer=True)),
                     int(f.number("steps", 1, 1000, 3, integer=True)),
                     int(f.number("seed", 0, 2**63 - 1, 0, integer=True)),
                     int(f.number("repeats", 1, 100, 1, integer=True)))
    f.done()
    return spec


class _Fields:
    """Reads fields of one JSON object, each checked; `done` refuses the ones left."""

    def __init__(self, data: dict[str, Any], rid: str, envelope: set[str],
                 prefix: str = "") -> None:
        self.data, self.rid, self.prefix = data, rid, prefix
        self.left = set(data) - envelope

    def _take(self, key: str) -> Any:
        self.left.discard(key)
        return self.data.get(key)

    def _bad(self, key: str, what: str) -> ProtocolError:
        return ProtocolError(BAD_VALUE, f"{self.prefix}{key}: {what}", self.rid)

    def number(self, key: str, lo: float, hi: float, default: float | None,
               integer: bool = False) -> float:
        v = self._take(key)
        if v is None:
            if default is None:
                raise self._bad(key, "missing")
            return default
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or not math.isfinite(v):
            raise self._bad(key, f"expected {'an integer' if integer else 'a number'}, "
                            f"got {v!r}")
        if not lo <= v <= hi:
            raise self._bad(key, f"must be in [{lo:g}, {hi:g}], got {v!r}")
        return float(v)

    def text(self, key: str, default: str | None) -> str | None:
        v = self._take(key)
        if v is None:
            return default
        if not isinstance(v, str) or len(v) > DEFAULT_MAX_LINE_BYTES:
            raise self._bad(key, "expected text")
        return v

    def choice(self, key: str, options: tuple[str, ...], default: str | None) -> str:
        v = self._take(key)
        if v is None and default is not None:
            return default
        if v not in options:
            raise self._bad(key, f"expected one of {', '.join(options)}, got {v!r}")
        return str(v)

    def flag(self, key: str, default: bool) -> bool:
        v = self._take(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self._bad(key, f"expected true or false, got {v!r}")
        return v

    def mapping(self, key: str) -> dict[str, Any]:
        v = self._take(key)
        if not isinstance(v, dict):
            raise self._bad(key, "expected an object")
        return v

    def items(self, key: str) -> list[Any]:
        v = self._take(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self._bad(key, "expected a list")
        return v

    def done(self) -> None:
        if self.left:
            raise self._bad(sorted(self.left)[0], "unknown field")
