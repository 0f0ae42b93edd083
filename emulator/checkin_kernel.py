"""One check-in draw compiled (numba, the optional `fast` extra): the same clients and
charges as `checkin._single`'s numpy path, bit for bit, in one pass.

A large launch's draw (tens of thousands of candidates) costs numpy some forty passes
over temporaries and a read of every column for every candidate; the loop here reads a
client's columns only until one rules it out (most are offline), and keeps nothing but
the result. It covers fleets held whole without an availability trace. Elsewhere, or
without numba (`checkin` imports this module only where numba is installed), or where
an hour is out of the range `mod_24`'s formula is exact for, the numpy path runs.
Only exact operations are compiled (integer hashing, comparisons, + - * / and floor;
no fused multiply-add, as numba compiles without `fastmath`), so the result cannot
depend on which path ran: `tests/test_checkin_kernel.py` compares whole runs.
Compiled once per installation (about two seconds; numba caches it beside this file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numba import njit

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.availability import HOUR
from edgetwin.emulator.clock import EXACT_BELOW
from edgetwin.emulator.streams import BELOW_ONE, GOLDEN, M1, M2

if TYPE_CHECKING:
    from edgetwin.emulator.engine import Engine


@dataclass(frozen=True)
class Fleet:
    """The arrays the kernel reads (the fleet's own, held whole; state written in place)."""

    tz_h: F64
    window_start_h: F64
    window_length_h: F64
    plug_start_h: F64
    plug_length_h: F64
    charge_w: F64
    phase_s: F64
    busy_until_s: F64
    battery_j: F64
    capacity_j: F64
    last_touch_s: F64
    group: I64
    standby_w: F64
    bound_h: float  # |tz| + |start| at most, over the fleet: where local hours stay exact


def fleet_of(engine: Engine) -> Fleet | None:
    """The kernel's view of the engine's fleet, or None where it does not apply."""
    model, f = engine.model, engine.fleet
    av = model.availability
    if not f.whole or av.trace is not None:
        return None
    arrays = dict(tz_h=f.tz_h, window_start_h=f.window_start_h,
                  window_length_h=f.window_length_h, plug_start_h=f.plug_start_h,
                  plug_length_h=f.plug_length_h, charge_w=model.charger.charge_w,
                  phase_s=av.phase_s, busy_until_s=engine.busy_until_s, battery_j=f.battery_j,
                  capacity_j=f.battery_capacity_j, last_touch_s=f.last_touch_s,
                  group=f.group, standby_w=model.standby_w)
    if not all(isinstance(a, np.ndarray) for a in arrays.values()):
        return None

    def most(name: str) -> float:
        return float(np.max(np.abs(np.asarray(arrays[name])), initial=0.0))

    bound_h = most("tz_h") + max(most("window_start_h"), most("plug_start_h"))
    return Fleet(**arrays, bound_h=bound_h)  # type: ignore[arg-type]


def eligible_draw(engine: Engine, kf: Fleet, marked: npt.NDArray[np.uint8], scan: bool,
                  key: int, size: int, t_s: float) -> tuple[I64, F64] | None:
    """Draw `size` candidates keyed by `key` (the whole fleet in order where that is
    as many), keep those not `marked` before (marking them; by a bit a client read in
    order, or by a sort of the draw, as `checkin.Drawn.fresh` chooses), and return the
    eligible ones in client order with their charge; None (nothing marked) where it
    cannot be exact."""
    hours = t_s / HOUR
    if not (hours >= 0.0 and hours + kf.bound_h < EXACT_BELOW / 4):
        return None
    streams, av = engine.streams, engine.model.availability
    try:
        out: tuple[I64, F64] = _draw(
            key, size, len(marked), np.uint64(streams.key("checkin")), marked, scan, t_s,
            kf.tz_h, kf.window_start_h, kf.window_length_h, av.charging_only, kf.plug_start_h,
            kf.plug_length_h, float(av.epoch_s), kf.phase_s,
            np.uint64(streams.key("availability")),
            float(av.online_fraction), kf.busy_until_s, kf.battery_j, kf.capacity_j,
            kf.last_touch_s, kf.charge_w, kf.group, kf.standby_w,
            float(engine.scenario.battery.min_pct_to_join))
    except SystemError as e:  # Ctrl-C during the call: numba returns with it pending
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__
        if cause is not None:
            raise KeyboardInterrupt from None
        raise
    return out


_GOLDEN, _M1, _M2 = np.uint64(GOLDEN), np.uint64(M1), np.uint64(M2)
_S11, _S27, _S30, _S31 = np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
_ONE = np.uint8(1)


def _trailing_zeros_table(de_bruijn: int) -> tuple[Any, Any]:
    """A de Bruijn multiplier and its table: a word's lowest set bit times the multiplier,
    shifted right by 58, indexes that bit's place (a count of trailing zeros in two
    operations)."""
    table = np.zeros(64, dtype=np.int64)
    for place in range(64):
        table[((de_bruijn << place) & (2 ** 64 - 1)) >> 58] = place
    return np.uint64(de_bruijn), table


_DE_BRUIJN, _PLACE = _trailing_zeros_table(0x03F79D71B4CB0A89)
_U0, _U1, _S58 = np.uint64(0), np.uint64(1), np.uint64(58)


@njit(cache=True)
def _mix(x: Any) -> Any:
    """SplitMix64's finaliser (as `streams._splitmix_in_place`)."""
    x = x + _GOLDEN
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@njit(cache=True)
def _unit(x: Any) -> float:
    """53 bits of `x` as a uniform in (0, 1) (as `streams.unit_interval`: 1 taken below)."""
    return min((float(np.int64(x >> _S11)) + 0.5) * (1.0 / 9007199254740992.0), BELOW_ONE)


@njit(cache=True)
def _mod_24(x: float) -> float:
    """`clock.mod_24` for |x| below its `EXACT_BELOW`."""
    r = float(x - np.floor(x / 24.0) * 24.0)
    return r + 24.0 if r < 0.0 else r


@njit(cache=True)
def _max(a: float, b: float) -> float:
    """numpy's `maximum`: `b` where equal (of 0.0 and -0.0, the second)."""
    return a if a > b or np.isnan(a) else b


@njit(cache=True)
def _min(a: float, b: float) -> float:
    """numpy's `minimum`: `b` where equal."""
    return a if a < b or np.isnan(a) else b


@njit(cache=True)
def _plugged_s(t0: float, t1: float, tz: float, start: float, length: float) -> float:
    """`availability.window_seconds` of one client."""
    y0 = t0 / HOUR + tz - start
    y1 = t1 / HOUR + tz - start
    on0 = (np.floor(y0 / 24.0) * length + _min(_mod_24(y0), length)) * HOUR
    on1 = (np.floor(y1 / 24.0) * length + _min(_mod_24(y1), length)) * HOUR
    return _max(on1 - on0, 0.0)


@njit(cache=True, nogil=True)
def _draw(key: int, size: int, n: int, h_draw: Any, marked: Any, scan: bool, t: float,
          tz: Any, ws: Any, wl: Any, charging_only: bool, ps: Any, pl: Any, epoch_s: float,
          phase: Any, h_avail: Any, online_fraction: float, busy_until: Any, battery: Any,
          capacity: Any, last_touch: Any, charge_w: Any, group: Any, standby_w: Any,
          min_pct: float) -> tuple[Any, Any]:
    drawn = np.empty(size, dtype=np.int64)
    for j in range(size):
        if size >= n:
            drawn[j] = j
        else:
            x = _mix(np.uint64(key | j) * _GOLDEN ^ h_draw)
            drawn[j] = min(int(_unit(x) * n), n - 1)  # truncated, as numpy's astype
    fresh = np.empty(size, dtype=np.int64)
    m = 0
    if scan:  # a bit a client for those not drawn before, then the set bits in order
        words = np.zeros((n + 63) >> 6, dtype=np.uint64)
        for d in drawn:
            if marked[d] == 0:
                words[d >> 6] |= _U1 << np.uint64(d & 63)
        for w in range(len(words)):
            x = words[w]
            while x != _U0:
                low = x & (~x + _U1)  # the lowest set bit
                c = (w << 6) + _PLACE[(low * _DE_BRUIJN) >> _S58]
                marked[c] = _ONE
                fresh[m] = c
                m += 1
                x ^= low
    else:
        drawn.sort()
        for d in drawn:
            if marked[d] == 0:
                marked[d] = _ONE
                fresh[m] = d
                m += 1
    out_c = np.empty(m, dtype=np.int64)
    out_b = np.empty(m, dtype=np.float64)
    k = 0
    hours = t / HOUR
    for c in fresh[:m]:
        if not _mod_24(hours + tz[c] - ws[c]) < wl[c]:
            continue
        if charging_only and not _mod_24(hours + tz[c] - ps[c]) < pl[c]:
            continue
        if epoch_s > 0.0:
            epoch = np.int64(np.floor((t + phase[c]) / epoch_s))
            x = _mix(np.uint64(c) * _GOLDEN ^ h_avail)
            x = _mix(x ^ np.uint64(epoch) * _GOLDEN)
            if not _unit(x) < online_fraction:
                continue
        if not busy_until[c] <= t:
            continue
        b, cap = battery[c], capacity[c]
        if np.isfinite(cap):
            t0 = last_touch[c]
            plugged = _plugged_s(t0, t, tz[c], ps[c], pl[c])
            unplugged = _max(t - t0 - plugged, 0.0)
            b = _min(_max(b + (charge_w[c] * plugged - standby_w[group[c]] * unplugged), 0.0),
                     cap)
            if not 100.0 * b / cap >= min_pct:
                continue
        elif not min_pct <= 100.0:
            continue
        out_c[k] = c
        out_b[k] = b
        k += 1
    return out_c[:k], out_b[:k]
