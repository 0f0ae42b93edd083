"""The compiled loops of the hot paths (numba, where installed: `edgetwin.common.compiled`),
each the same arithmetic in the same order as the numpy path it stands in for, so that
both give the same bytes (tests/test_kernels.py runs both).

- `MIX`: `Streams.uniform` over its array keys (SplitMix64), in one pass;
- `FRESH_DRAWS`: a single check-in's draws of clients not drawn before;
- `ELIGIBLE`: the check-in's filter (idle, online, charged enough) and each candidate's
  charge, as `checkin.candidates` works them out, for a fleet held whole.

They live in one module because numba's disk cache watches the file of the function it
compiles: a helper elsewhere could change without the cache noticing.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgetwin.common.compiled import Kernel

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
S11, S27, S30, S31 = np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
HOUR = 3600.0
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _mixed(x: np.uint64, key: np.int64 | int) -> np.uint64:
    """One key mixed in: its bits times the golden ratio, then SplitMix64's finaliser."""
    x ^= np.uint64(key) * GOLDEN
    x += GOLDEN
    x ^= x >> S30
    x *= M1
    x ^= x >> S27
    x *= M2
    x ^= x >> S31
    return x


def _unit(x: np.uint64) -> float:
    """The uniform in (0, 1) of a mixed key: its top 53 bits, centred."""
    return (np.float64(x >> S11) + 0.5) * (1.0 / float(1 << 53))


def _mix_rows(h: np.uint64, keys: I64, out: F64) -> None:
    """`Streams.uniform` of array keys (one row each): one uniform per column."""
    for i in range(out.shape[0]):
        x = h
        for j in range(keys.shape[0]):
            x = _mixed(x, keys[j, i])
        out[i] = _unit(x)


MIX = Kernel(_mix_rows, uses=(_mixed, _unit))


def _eligible_rows(c: I64, t_s: F64, busy_until_s: F64,
                   tz_h: F64, window_start_h: F64, window_length_h: F64,
                   charging_only: bool, plug_tz_h: F64, plug_start_h: F64, plug_length_h: F64,
                   charge_w: F64,
                   churn_key: np.uint64, epoch_s: float, phase_s: F64, online_fraction: float,
                   battery_j: F64, capacity_j: F64, last_touch_s: F64, standby_w: F64,
                   group: I64, min_pct: float, ok: npt.NDArray[np.bool_], charge_j: F64
                   ) -> None:
    """For each candidate `c[i]` at `t_s[i]`: whether it is idle, online (daily window,
    charger where charging only, churn) and charged enough (`ok`), and its charge then
    (`charge_j`, for those online). The numpy path: `Availability.online`,
    `SessionModel.battery_at` and `charged_enough`, with numpy's minimum, maximum and
    clip spelled out (their choice between equal zeros kept)."""
    for i in range(c.shape[0]):  # without branches: the loads of many candidates overlap
        ci, t = c[i], t_s[i]
        ok[i] = (busy_until_s[ci] <= t) & \
            ((t / HOUR + tz_h[ci] - window_start_h[ci]) % 24.0 < window_length_h[ci])
        charge_j[i] = np.nan
    for j in np.flatnonzero(ok):
        ci, t = c[j], t_s[j]
        ok[j] = False
        if charging_only and not (t / HOUR + plug_tz_h[ci] - plug_start_h[ci]) % 24.0 \
                < plug_length_h[ci]:
            continue
        if epoch_s > 0:
            epoch = np.int64(np.floor((t + phase_s[ci]) / epoch_s))
            if not _unit(_mixed(_mixed(churn_key, ci), epoch)) < online_fraction:
                continue
        b, cap = battery_j[ci], capacity_j[ci]
        pct = 100.0
        if np.isfinite(cap):
            t0 = last_touch_s[ci]
            y1 = t / HOUR + plug_tz_h[ci] - plug_start_h[ci]
            y0 = t0 / HOUR + plug_tz_h[ci] - plug_start_h[ci]
            m1, m0, length = y1 % 24.0, y0 % 24.0, plug_length_h[ci]
            on1 = (np.floor(y1 / 24.0) * length + (m1 if m1 <= length else length)) * HOUR
            on0 = (np.floor(y0 / 24.0) * length + (m0 if m0 <= length else length)) * HOUR
            plugged = on1 - on0
            plugged = plugged if plugged >= 0.0 else 0.0
            unplugged = t - t0 - plugged
            unplugged = unplugged if unplugged >= 0.0 else 0.0
            b = b + (charge_w[ci] * plugged - standby_w[group[ci]] * unplugged)
            b = b if b > 0.0 else 0.0
            b = b if b < cap else cap
            pct = 100.0 * b / cap
        charge_j[j] = b
        ok[j] = pct >= min_pct


ELIGIBLE = Kernel(_eligible_rows, uses=(_mixed, _unit))


DRAWN, FRESH = -1, -2  # stamps of a client drawn before, and drawn by this draw


def _fresh_draws(h: np.uint64, first_key: int, size: int, n: int, whole: bool,
                 stamp: npt.NDArray[np.int32], in_order: bool, out: I64) -> int:
    """One draw of a single launch: `size` clients (`uniform` of `first_key | j`, scaled
    to the fleet; the fleet in order where `whole`), each once, less those stamped
    before; written to `out` (in client order if `in_order`, by a pass over the stamps)
    and stamped; how many. As `Drawn` of `checkin.py` with `Streams.uniform`."""
    found = 0
    for j in range(size):
        c = j if whole else min(int(_unit(_mixed(h, first_key | j)) * n), n - 1)
        if stamp[c] >= 0:
            stamp[c] = FRESH
            out[found] = c
            found += 1
    if in_order:
        found = 0
        for c in range(n):
            if stamp[c] == FRESH:
                out[found] = c
                found += 1
    for i in range(found):
        stamp[out[i]] = DRAWN
    return found


FRESH_DRAWS = Kernel(_fresh_draws, uses=(_mixed, _unit))
