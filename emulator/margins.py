"""How sure the twin is of each session: its timing margin, the probability it
completes, and an interval of its time (the columns `timing_margin`, `p_complete`,
`session_s_p05`, `session_s_p95` of client_sessions.csv).

A session's outcome turns on its compute time (its set-up and steps; its download and
upload as they were). Its round is recomputed with that one session changed and the
others as they ran: it completes while it ends by its `cut_s` (the deadline, or the
report that would close the round without it) and before it goes offline, the user
abandons it, or (asynchronous) its report comes too stale.

- `timing_margin`: the factor on its compute time nearest 1 at which its outcome
  changes: above 1, that many times slower flips it; below 1, that much faster; `inf`
  where no factor does (out of memory, out of battery, offline before it trained).
  A battery failure is taken to strike at any speed.
- `p_complete`: the probability that it completes, its compute drawn from the profile's
  session variability (`compute.session_cv`) around the prediction.
- `session_s_p05`, `session_s_p95`: the 5th and 95th percentiles of its uninterrupted
  duration under that variability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.session import (
    BATTERY,
    COMPLETED,
    INTERRUPTED,
    OFFLINE,
    OOM,
    STALE,
    Planned,
)
from edgetwin.profiles import variability

_SIDE = 1e-9  # how far past a breakpoint its far side is evaluated, relative


@dataclass(frozen=True)
class Cut:
    """Per session, what its round makes of its end (the others as they ran)."""

    at_s: F64  # the latest end at which it completes; a failure after it is cut here
    status: I64  # what the cut makes of it (deadline or cancelled)
    stale_s: F64 | None = None  # asynchronous: a report at or after this is too stale


@dataclass(frozen=True)
class Timing:
    timing_margin: F64
    p_complete: F64
    session_s_p05: F64
    session_s_p95: F64


@dataclass(frozen=True)
class _Parts:
    """The session's timeline with its compute time `c` (set-up and steps) as the one
    variable: the compute ends at `ce0 + phi c`, the upload at `u0 + phi c`."""

    c: F64
    ce0: F64
    u0: F64


def _parts(p: Planned) -> _Parts:
    c = np.maximum(p.compute_end_s - p.download_end_s, 0.0)
    return _Parts(c=c, ce0=p.compute_end_s - c, u0=p.upload_end_s - c)


def status_at(p: Planned, cut: Cut, phi: F64, x: _Parts | None = None) -> I64:
    """Each session's outcome with its compute time times `phi` (its round otherwise as
    it ran); out of memory and out of battery at any factor."""
    x = x or _parts(p)
    ce = x.ce0 + phi * x.c
    u = x.u0 + phi * x.c
    interrupt = np.where(p.interrupt_s < ce, p.interrupt_s, np.inf)
    offline = np.where(p.offline_s < u, p.offline_s, np.inf)
    fail = np.minimum(interrupt, offline)
    fail_cause = np.where(interrupt < offline, INTERRUPTED, OFFLINE)
    stale = cut.stale_s if cut.stale_s is not None else np.full(len(u), np.inf)
    own = np.where(u > cut.at_s, cut.status, np.where(u >= stale, STALE, COMPLETED))
    out = np.where(np.isfinite(fail), np.where(fail > cut.at_s, cut.status, fail_cause), own)
    fixed = (p.stop_cause == OOM) | (p.stop_cause == BATTERY)
    return np.where(fixed, p.stop_cause, out).astype(np.int64)


def completion_factor(p: Planned, cut: Cut, x: _Parts | None = None) -> F64:
    """The largest factor on each session's compute time at which it still completes (0:
    at none; inf: at any)."""
    x = x or _parts(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        bounds = [(cut.at_s - x.u0) / x.c, (p.offline_s - x.u0) / x.c,
                  (p.interrupt_s - x.ce0) / x.c]
        if cut.stale_s is not None:
            bounds.append((cut.stale_s - x.u0) / x.c)
    phi = np.nan_to_num(np.minimum.reduce(bounds), nan=np.inf, posinf=np.inf)
    no_compute = x.c <= 0
    fixed = (p.stop_cause == OOM) | (p.stop_cause == BATTERY)
    done_anyway = status_at(p, cut, np.ones(len(x.c)), x) == COMPLETED
    phi = np.where(no_compute, np.where(done_anyway, np.inf, 0.0), np.maximum(phi, 0.0))
    return np.where(fixed, 0.0, phi)


def timing(p: Planned, status: I64, cut: Cut, cv: F64) -> Timing:
    """Margins, completion probabilities and intervals of a batch of sessions; `status`
    as they were recorded."""
    x = _parts(p)
    n = len(x.c)
    with np.errstate(divide="ignore", invalid="ignore"):
        candidates = np.stack([(cut.at_s - x.u0) / x.c, (p.offline_s - x.u0) / x.c,
                               (p.interrupt_s - x.ce0) / x.c,
                               (cut.stale_s - x.u0) / x.c if cut.stale_s is not None
                               else np.full(n, np.nan)])
    margin = np.full(n, np.inf)
    for b in candidates:
        ok = np.isfinite(b) & (b > 0) & (x.c > 0)
        if not ok.any():
            continue
        side = np.where(b >= 1.0, b * (1 + _SIDE), b * (1 - _SIDE))
        flips = ok & (status_at(p, cut, np.where(ok, side, 1.0), x) != status)
        nearer = flips & (np.abs(np.log(np.where(ok, b, 1.0))) < np.abs(np.log(margin)))
        margin = np.where(nearer, b, margin)
    phi_c = completion_factor(p, cut, x)
    p_complete = np.where(np.isinf(phi_c), 1.0,
                          variability.prob_at_most(p.compute_factor * phi_c, cv))
    fixed_s = p.upload_end_s - p.start_s - x.c
    nominal_c = x.c / p.compute_factor
    return Timing(timing_margin=margin, p_complete=p_complete,
                  session_s_p05=fixed_s + nominal_c * variability.quantile(0.05, cv),
                  session_s_p95=fixed_s + nominal_c * variability.quantile(0.95, cv))
