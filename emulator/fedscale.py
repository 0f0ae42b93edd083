"""FedScale's device availability trace as edgetwin's (client,start_s,end_s) CSV.

FedScale's `client_behave_trace` (benchmark/dataset/data/device_info/ in
SymbioticLab/FedScale; FLASH-derived, available = charging) is a pickled dict: client id
-> {'duration': INT, 'inactive': [INT], 'finish_time': INT, 'active': [INT], 'model':
STR}, as its docs give it. fedscale/cloud/client_manager.py pickle.loads it and
fedscale/cloud/internal/client_metadata.py (is_active) reads it: norm_time = cur_time %
finish_time, available while active[i] <= norm_time <= inactive[i] (its cursor steps
one interval a call; this is the rule it approximates, ends half-open here).

edgetwin loops a whole trace with one period (its `period_s` column), FedScale each
client with its own finish_time; so each client is repeated up to the largest
finish_time taken (the last copy clipped), which is written as the period. That agrees
with FedScale at every time when every finish_time divides the largest; otherwise only
within the first period, and the summary says so. The pickle is read by an unpickler that refuses
every class: a trace holds only plain data, and unpickling a class can run any code.
"""

from __future__ import annotations

import math
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from edgetwin.common.errors import InputError

Interval = tuple[float, float]
Row = tuple[int, float, float]
KEYS = ("active", "inactive", "finish_time")
MAX_ROWS = 50_000_000  # a tiny finish_time beside a long one would repeat without end


class _Refused(pickle.UnpicklingError):
    """The pickle names a class or function (which one: the message)."""


class _NoClasses(pickle.Unpickler):
    """Plain data only: any class or function the pickle names is refused, not loaded."""

    def find_class(self, module: str, name: str) -> Any:
        if not all(part.isidentifier() for part in f"{module}.{name}".split(".")):
            raise pickle.UnpicklingError("garbled class name")  # text, say
        raise _Refused(f"{module}.{name}")


@dataclass(frozen=True)
class Client:
    """One FedScale client: its available intervals within one finish_time."""

    finish_s: float
    intervals: list[Interval]


@dataclass(frozen=True)
class Imported:
    """What a conversion wrote, for its summary line."""

    clients: int
    intervals: int
    period_s: float  # the largest finish_time: each client is repeated up to it
    available_share: float  # mean over clients of the time available in a period
    not_dividing: int  # clients whose finish_time does not divide period_s


def read_fedscale(path: Path) -> dict[int, Client]:
    """Every client of the pickle at `path`, checked; InputError names the first problem."""
    try:
        with path.open("rb") as fh:
            data = _NoClasses(fh).load()
    except OSError as err:
        raise InputError(str(path), "", f"cannot read ({err.strerror})") from None
    except _Refused as err:
        raise InputError(str(path), "", f"refused: the pickle needs {err}; a FedScale trace "
                         "holds only dicts, lists and numbers, so no class is loaded") from None
    except pickle.UnpicklingError as err:
        raise InputError(str(path), "", f"not a pickle ({err})") from None
    except Exception as err:  # a truncated or foreign file fails in many ways
        raise InputError(str(path), "", f"not a pickle ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict) or not data:
        raise InputError(str(path), "", "expected a dict of client id -> trace")
    clients: dict[int, Client] = {}
    for key, entry in data.items():
        cid = _client_id(path, key)
        if cid in clients:
            raise InputError(str(path), f"client {key!r}", f"the id {cid} is given twice")
        clients[cid] = _client(path, key, entry)
    return clients


def _client_id(path: Path, key: Any) -> int:
    if isinstance(key, int | str) and not isinstance(key, bool) and str(key).isdecimal():
        return int(key)
    raise InputError(str(path), f"client {key!r}", "expected a whole-number client id")


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _times(seq: Any, bad: Callable[[str], InputError]) -> list[float]:
    if not isinstance(seq, list | tuple) or not seq:
        raise bad("expected a non-empty list of times in seconds")
    for i, x in enumerate(seq):
        if not _number(x):
            raise bad(f"[{i}] = {x!r} is not a number")
    return [float(x) for x in seq]


def _client(path: Path, cid: Any, entry: Any) -> Client:
    def bad(key: str, problem: str) -> InputError:
        return InputError(str(path), f"client {cid}: {key}" if key else f"client {cid}", problem)

    if not isinstance(entry, dict):
        raise bad("", "expected a dict with active, inactive and finish_time")
    for key in KEYS:
        if key not in entry:
            raise bad(key, "missing")
    finish = entry["finish_time"]
    if not _number(finish) or finish <= 0:
        raise bad("finish_time", f"expected a number > 0, got {finish!r}")
    on, off = (_times(entry[key], partial(bad, key)) for key in ("active", "inactive"))
    if len(on) != len(off):
        raise bad("inactive", f"has {len(off)} times but active has {len(on)}: active[i] "
                  "starts the interval that inactive[i] ends")
    if on[0] < 0:
        raise bad("active", f"[0] = {on[0]:g} is negative")
    for i, (a, b) in enumerate(zip(on, off, strict=True)):
        if b < a:
            raise bad("inactive", f"[{i}] = {b:g} is before active[{i}] = {a:g}: times "
                      "must increase")
        if i and a < off[i - 1]:
            raise bad("active", f"[{i}] = {a:g} is before inactive[{i - 1}] = "
                      f"{off[i - 1]:g}: times must increase")
    if off[-1] > finish:
        raise bad("inactive", f"[{len(off) - 1}] = {off[-1]:g} is past finish_time {finish:g}")
    spans = [(a, b) for a, b in zip(on, off, strict=True) if b > a]
    if not spans:  # a client with no row would shift every other client's place
        raise bad("inactive", "every interval is empty (inactive[i] == active[i]): an "
                  "edgetwin trace cannot hold a client that is never available")
    return Client(float(finish), spans)


def repeated(client: Client, period_s: float) -> list[Interval]:
    """The client's intervals repeated every finish_time up to `period_s` (the last copy
    clipped there), intervals that touch merged into one."""
    out: list[Interval] = []
    for k in range(math.ceil(period_s / client.finish_s)):
        for a, b in client.intervals:
            a, b = a + k * client.finish_s, min(b + k * client.finish_s, period_s)
            if a >= b:
                break
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(b, out[-1][1]))
            else:
                out.append((a, b))
    return out


def convert(clients: dict[int, Client], max_clients: int | None = None, where: str = ""
            ) -> tuple[list[Row], Imported]:
    """Rows (client, start_s, end_s) of the first `max_clients` clients by id, and a summary."""
    ids = sorted(clients)[:max_clients]
    period = max(clients[c].finish_s for c in ids)
    copies = {c: math.ceil(period / clients[c].finish_s) * len(clients[c].intervals)
              for c in ids}
    if sum(copies.values()) > MAX_ROWS:
        worst = max(ids, key=copies.__getitem__)
        raise InputError(where, f"client {worst}: finish_time", f"{clients[worst].finish_s:g}"
                         f" s, repeated up to the longest ({period:g} s), makes too many "
                         "intervals")
    rows: list[Row] = []
    for c in ids:
        rows.extend((c, a, b) for a, b in repeated(clients[c], period))
    online = sum(b - a for _, a, b in rows)
    not_dividing = sum(1 for c in ids if not math.isclose(
        period / clients[c].finish_s, round(period / clients[c].finish_s), abs_tol=1e-9))
    return rows, Imported(clients=len(ids), intervals=len(rows), period_s=period,
                          available_share=online / (len(ids) * period),
                          not_dividing=not_dividing)


def write_rows(rows: list[Row], out: Path, period_s: float) -> None:
    """The CSV at `out` (with the period the trace loops at on every row), written beside
    it first and renamed into place, so a failure leaves whatever was there untouched."""
    def num(x: float) -> str:
        return str(int(x)) if x.is_integer() else repr(x)
    tmp: str | None = None
    try:
        with tempfile.NamedTemporaryFile("w", dir=out.parent, delete=False,
                                         prefix=f".{out.name}.", suffix=".tmp") as fh:
            tmp = fh.name
            fh.write("client,start_s,end_s,period_s\n")
            fh.writelines(f"{c},{num(a)},{num(b)},{num(period_s)}\n" for c, a, b in rows)
        os.replace(tmp, out)
        tmp = None
    except OSError as err:
        raise InputError(str(out), "--out", f"cannot write ({err.strerror})") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def import_fedscale(path: Path, out: Path, max_clients: int | None = None) -> Imported:
    """Read the FedScale pickle at `path`, write its edgetwin trace to `out`."""
    if max_clients is not None and max_clients < 1:
        raise InputError("--clients", str(max_clients), "must be >= 1")
    rows, summary = convert(read_fedscale(path), max_clients, str(path))
    write_rows(rows, out, summary.period_s)
    return summary
