"""Transfer times over a client's link, with per-session jitter and optional traces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetwin.common.arrays import F64
from edgetwin.emulator.csvfile import read_rows


def transfer_s(nbytes: F64, mbps: F64, latency_s: F64) -> F64:
    """One request/response round trip plus the payload at the link's goodput."""
    return np.where(nbytes > 0, latency_s + nbytes * 8.0 / (mbps * 1e6), 0.0)


def jitter(u: F64, cv: F64 | float) -> F64:
    """Lognormal factors with mean 1 and coefficient of variation `cv`, from uniforms."""
    from scipy.special import ndtri

    sigma = np.sqrt(np.log1p(np.asarray(cv, dtype=np.float64) ** 2))
    normal: F64 = ndtri(u)
    return np.exp(normal * sigma - sigma * sigma / 2)


@dataclass(frozen=True)
class BandwidthTrace:
    """A link over time, `time_s,downlink_mbps,uplink_mbps`: piecewise constant (a row
    holds until the next) and looped (the period is the last time plus the mean step).

    `shape`: each client's drawn bandwidth is scaled by trace / trace mean, so the trace
    shapes variation over time while the group's distribution sets the level.
    `absolute`: the trace is every client's bandwidth in Mbit/s.
    """

    times_s: F64
    down: F64
    up: F64
    absolute: bool = False

    @classmethod
    def load(cls, path: Path, mode: str = "shape") -> BandwidthTrace:
        rows = read_rows(path, ("time_s", "downlink_mbps", "uplink_mbps"), check=lambda r: (
            None if r[0] >= 0 and r[1] > 0 and r[2] > 0
            else "bandwidth must be > 0 and time >= 0"))
        arr = np.array(sorted(rows))
        if mode == "absolute":
            return cls(arr[:, 0], arr[:, 1], arr[:, 2], absolute=True)
        return cls(arr[:, 0], arr[:, 1] / arr[:, 1].mean(), arr[:, 2] / arr[:, 2].mean())

    def links(self, t_s: F64, down_mbps: F64, up_mbps: F64, drawn_down_mbps: F64,
              drawn_up_mbps: F64) -> tuple[F64, F64]:
        """Sessions' links at their start `t_s`, from the drawn links with their jitter
        (`down_mbps`) and without it (`drawn_down_mbps`)."""
        span = self.times_s[-1] + (self.times_s[-1] - self.times_s[0]) / max(
            len(self.times_s) - 1, 1)
        idx = np.searchsorted(self.times_s, np.mod(t_s, span), side="right") - 1
        idx = np.clip(idx, 0, len(self.times_s) - 1)
        if self.absolute:  # the trace in place of each client's drawn level, jitter kept
            return (down_mbps / drawn_down_mbps * self.down[idx],
                    up_mbps / drawn_up_mbps * self.up[idx])
        return down_mbps * self.down[idx], up_mbps * self.up[idx]
