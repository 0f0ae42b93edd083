"""When a client is online: daily windows in its own time zone, a charger schedule,
churn in and out of spells, and recorded traces; all evaluated on demand.

Nothing here runs as an event: availability is a pure function of (client, time)
drawn from the availability stream, so an idle client costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetwin.common.arrays import F64, I64, B, at_places
from edgetwin.emulator.clock import mod_24
from edgetwin.emulator.columns import Column, Of
from edgetwin.emulator.csvfile import read_rows
from edgetwin.emulator.entries import take
from edgetwin.emulator.streams import Streams

HOUR = 3600.0
ColumnOf = Callable[[Of], Column]  # a per-client column of a function, as the fleet holds its own
CHURN_EPOCHS = 400  # a spell longer than this many epochs does not end
LOOK_PAIRS = 1 << 20  # (client, epoch) pairs a first look at churn spells takes at most


def in_daily_window(t_s: F64, tz_h: F64, start_h: F64, length_h: F64) -> B:
    """Whether local time (t + tz) falls in [start, start + length) of its day."""
    local = mod_24(t_s / HOUR + tz_h - start_h)
    return local < length_h


def window_end_s(t_s: F64, tz_h: F64, start_h: F64, length_h: F64) -> F64:
    """For a time inside the window: when the window closes (inf for a 24 h window)."""
    local = mod_24(t_s / HOUR + tz_h - start_h)
    return np.where(length_h >= 24.0, np.inf, t_s + (length_h - local) * HOUR)


def window_seconds(t0_s: F64, t1_s: F64, tz_h: F64, start_h: F64, length_h: F64) -> F64:
    """Seconds of [t0, t1] spent inside the daily window."""
    def cumulative(t: F64) -> F64:
        y = t / HOUR + tz_h - start_h
        return (np.floor(y / 24.0) * length_h + np.minimum(mod_24(y), length_h)) * HOUR

    return np.maximum(cumulative(t1_s) - cumulative(t0_s), 0.0)


@dataclass(frozen=True)
class Charger:
    """Each client's charger: its rate, and the daily window (local time) it is plugged
    in; a device without a battery is on mains, a 24-hour window."""

    charge_w: F64
    tz_h: F64
    start_h: F64
    length_h: F64

    def on(self, t_s: F64) -> B:
        return in_daily_window(t_s, self.tz_h, self.start_h, self.length_h)

    def plugged_s(self, t0_s: F64, t1_s: F64) -> F64:
        """Seconds of [t0, t1] on the charger."""
        return window_seconds(t0_s, t1_s, self.tz_h, self.start_h, self.length_h)

    def steady_over(self, t0_s: F64, t1_s: F64) -> B:
        """On the charger all of [t0, t1], or off it all of it."""
        on = self.plugged_s(t0_s, t1_s)
        return (on <= 0.0) | (on >= (t1_s - t0_s) * (1.0 - 1e-12))


@dataclass(frozen=True)
class Chargers:
    """The fleet's chargers as per-client columns: `Charger`s taken for the clients
    asked."""

    charge_w: Column
    tz_h: Column
    start_h: Column
    length_h: Column

    def on_for(self, c: I64, t_s: F64) -> B:
        """Whether clients `c` are on their chargers at `t_s`."""
        return in_daily_window(t_s, self.tz_h[c], self.start_h[c], self.length_h[c])

    def of(self, c: I64) -> Charger:
        """The chargers of clients `c`."""
        return Charger(self.charge_w[c], self.tz_h[c], self.start_h[c], self.length_h[c])


@dataclass(frozen=True)
class Trace:
    """Recorded online intervals, flattened and sorted; client i replays trace client i mod M,
    and the trace loops every `period_s`."""

    keys: F64  # trace_client * stride + start, stride = 2 x period (no two clients touch)
    ends: F64
    clients: I64
    n_clients: int
    period_s: float

    @classmethod
    def load(cls, path: Path) -> Trace:
        """Rows `client,start_s,end_s`, and an optional `period_s` column (one value on
        every row): the trace loops every period_s, or at its last end_s without it."""
        columns = ["client", "start_s", "end_s"]
        try:
            with path.open(newline="") as fh:
                header = fh.readline()
        except OSError:
            header = ""  # read_rows names the problem
        looped = "period_s" in [h.strip() for h in header.split(",")]
        if looped:
            columns.append("period_s")
        periods: set[float] = set()

        def check(r: tuple[float, ...]) -> str | None:
            if not 0 <= r[1] < r[2] or not np.isfinite(r[2]):
                return "needs 0 <= start_s < end_s, finite"
            if not looped:
                return None
            periods.add(r[3])
            if not np.isfinite(r[3]) or r[2] > r[3]:
                return "needs end_s <= period_s, a finite number"
            return None if len(periods) == 1 else "period_s differs from the rows above"

        read = read_rows(path, columns, types="iff" + "f" * looped, check=check)
        rows = [(int(r[0]), r[1], r[2]) for r in read]
        ids = sorted({r[0] for r in rows})
        dense = {c: i for i, c in enumerate(ids)}
        period = read[0][3] if looped else max(r[2] for r in rows)
        data = np.array(sorted((dense[c] * period * 2 + a, dense[c] * period * 2 + b, dense[c])
                               for c, a, b in rows))
        return cls(keys=data[:, 0], ends=data[:, 1], clients=data[:, 2].astype(np.int64),
                   n_clients=len(ids), period_s=period)

    def _lookup(self, client: I64, t_s: F64) -> tuple[I64, B]:
        tc = np.mod(client, self.n_clients)
        local = np.mod(t_s, self.period_s)
        key = tc * 2 * self.period_s + local
        idx = np.searchsorted(self.keys, key, side="right") - 1
        ok = idx >= 0
        idx = np.maximum(idx, 0)
        inside = ok & (self.clients[idx] == tc) & (self.ends[idx] > key)
        return idx, inside

    def online(self, client: I64, t_s: F64) -> B:
        return self._lookup(client, t_s)[1]

    def end_s(self, client: I64, t_s: F64) -> F64:
        idx, inside = self._lookup(client, t_s)
        tc = np.mod(client, self.n_clients)
        local = np.mod(t_s, self.period_s)
        return np.where(inside, t_s + (self.ends[idx] - (tc * 2 * self.period_s + local)), t_s)


class Availability:
    """Online and next-offline times for any clients at any time."""

    def __init__(self, streams: Streams, *, tz_h: Column, window_start_h: Column,
                 window_length_h: Column, charger: Chargers, column: ColumnOf,
                 charging_only: bool, mean_session_s: float | None, online_fraction: float,
                 trace: Trace | None) -> None:
        self.streams = streams
        self.tz_h, self.window_start_h, self.window_length_h = (tz_h, window_start_h,
                                                                window_length_h)
        self.charger = charger
        # the charger's local hours are the daily window's (the same time zone column):
        # worked out once for both
        self.shared_tz = charger.tz_h is tz_h
        self.charging_only = charging_only
        self.online_fraction = online_fraction
        # churn: epochs of this length are each online with probability q, so online
        # spells last epoch / (1 - q) on average
        self.epoch_s = (mean_session_s or 0.0) * (1.0 - online_fraction) \
            if mean_session_s and online_fraction < 1 else 0.0
        self.trace = trace
        # epochs within which 95 % of churn spells end (`_churn_end_s` looks at them first)
        q = min(online_fraction, 1.0 - 1e-9)
        self.first_look_epochs = 1 if q <= 0 else \
            min(max(1, math.ceil(math.log(0.05) / math.log(q))), CHURN_EPOCHS)
        epoch_s = self.epoch_s
        self.phase_s = column(lambda c: self.streams.uniform(
            "availability", c, np.full(c.shape, -1)) * epoch_s)

    def plugged(self, c: I64, t_s: F64) -> B:
        return self.charger.on_for(c, t_s)

    def _churn_on(self, c: I64, epoch: I64) -> B:
        return self.streams.uniform("availability", c, epoch) < self.online_fraction

    def _epoch(self, c: I64, t_s: F64, phase_s: F64 | None = None) -> I64:
        """Churn epochs start at a phase of each client's own, so spells do not all
        begin and end together (`phase_s`: theirs, where the caller has read them)."""
        phase = self.phase_s[c] if phase_s is None else phase_s
        return np.floor((t_s + phase) / self.epoch_s).astype(np.int64)

    def online(self, c: I64, t_s: F64 | float) -> B:
        """Whether clients `c` are online at `t_s` (one instant for all, or one each)."""
        return self._online(c, t_s, chargers=False)[0]

    def online_with_chargers(self, c: I64, t_s: F64 | float) -> tuple[B, Charger | None]:
        """`online`, and the chargers of those online where the check read them (a
        check-in then works out their charge without reading them again), else None."""
        return self._online(c, t_s, chargers=True)

    def _online(self, c: I64, t_s: F64 | float, chargers: bool) -> tuple[B, Charger | None]:
        t_s = np.asarray(t_s, dtype=np.float64)
        ch, read = self.charger, None
        if self.trace is not None:
            on = self.trace.online(c, t_s)
            tz = None
        else:  # local hours (t + tz), worked out once for the window and the charger
            tz = self.tz_h[c]
            local_h = t_s / HOUR + tz
            on = mod_24(local_h - self.window_start_h[c]) < self.window_length_h[c]
        if self.charging_only:  # the charger, for those the daily window lets on
            i = np.flatnonzero(on)
            if tz is not None and self.shared_tz:
                start, length = ch.start_h[c[i]], ch.length_h[c[i]]
                plugged = mod_24(local_h[i] - start) < length
                on[i] = plugged
                if chargers:
                    kept = i[plugged]
                    read = Charger(charge_w=ch.charge_w[c[kept]], tz_h=tz[kept],
                                   start_h=start[plugged], length_h=length[plugged])
            else:
                on[i] = self.plugged(c[i], at_places(t_s, i))
        if self.epoch_s > 0:  # churn, for those the windows let on
            i = np.flatnonzero(on)
            churned_on = self._churn_on(c[i], self._epoch(c[i], at_places(t_s, i)))
            on[i] = churned_on
            read = None if read is None else take(read, churned_on)
        return on, read

    def offline_at(self, c: I64, t_s: F64, charger: Charger | None = None,
                   until_s: F64 | None = None) -> F64:
        """For clients online at `t_s`: when they next go offline (`charger`: their
        chargers, where the caller has them read). With `until_s`, only up to then: inf
        for those still online at it (a churn spell is not followed past it)."""
        t_s = np.broadcast_to(t_s, c.shape).astype(np.float64)
        if until_s is not None and not np.isfinite(until_s).all():
            until_s = None  # an infinite bound bounds nothing (and falls in no epoch)
        ch = self.charger.of(c) if charger is None and self.charging_only else charger
        if self.trace is not None:
            end = self.trace.end_s(c, t_s)
        else:
            tz = ch.tz_h if ch is not None and self.shared_tz else self.tz_h[c]
            end = window_end_s(t_s, tz, self.window_start_h[c], self.window_length_h[c])
        if self.charging_only:
            assert ch is not None
            end = np.minimum(end, window_end_s(t_s, ch.tz_h, ch.start_h, ch.length_h))
        if self.epoch_s > 0:
            phase = self.phase_s[c]
            nxt = self._epoch(c, t_s, phase) + 1
            most = CHURN_EPOCHS
            if until_s is not None:  # up to the epoch `until_s` falls in, and one more for
                # the rounding (the last whose start can be at or before it), for all
                ahead = int((self._epoch(c, until_s, phase) - nxt).max(initial=-2))
                most = min(CHURN_EPOCHS, ahead + 2)
            end = np.minimum(end, self._churn_end_s(c, nxt, phase, most))
        return end if until_s is None else np.where(end <= until_s, end, np.inf)

    def _churn_end_s(self, c: I64, epoch: I64, phase_s: F64, most: int = CHURN_EPOCHS
                     ) -> F64:
        """When each client's churn spell ends: the start of its first epoch from `epoch`
        on that is off, among the `most` epochs from there (inf if all are on).
        `phase_s`: the clients' epoch phases. Spells are geometric: the
        epochs are looked at first as many as end 95 % of spells (fewer for so many
        clients that their temporaries would pass `LOOK_PAIRS`), then twice as many
        again each time: one call finds most ends (a call costs more than the epochs it
        looks at in vain), and the longest take few more."""
        end = np.full(c.shape, np.inf)
        todo = np.arange(len(c))
        first, width = 0, max(1, min(self.first_look_epochs, LOOK_PAIRS // max(len(c), 1)))
        while len(todo) and first < most:
            width = min(width, most - first)
            epochs = epoch[todo, None] + first + np.arange(width)
            off = ~self._churn_on(c[todo, None], epochs)
            found = off.any(axis=1)
            at = np.argmax(off, axis=1)[found]
            done = todo[found]
            end[done] = epochs[found, at] * self.epoch_s - phase_s[done]
            first, width = first + width, 2 * width
            todo = todo[~found]
        return end
