"""Transfer times over a client's link, with per-session jitter and optional traces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from emulator.csvfile import read_rows

F64 = npt.NDArray[np.float64]


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
    """Piecewise-constant link multipliers over time, looped: time_s,downlink_mbps,uplink_mbps.

    Each client's drawn bandwidth is scaled by trace / trace mean, so the trace
    shapes variation over time while the group's distribution sets the level.
    """

    times_s: F64
    down: F64
    up: F64

    @classmethod
    def load(cls, path: Path) -> BandwidthTrace:
        rows = read_rows(path, ("time_s", "downlink_mbps", "uplink_mbps"), check=lambda r: (
            None if r[0] >= 0 and r[1] > 0 and r[2] > 0
            else "bandwidth must be > 0 and time >= 0"))
        arr = np.array(sorted(rows))
        return cls(arr[:, 0], arr[:, 1] / arr[:, 1].mean(), arr[:, 2] / arr[:, 2].mean())

    def factors(self, t_s: F64) -> tuple[F64, F64]:
        span = self.times_s[-1] + (self.times_s[-1] - self.times_s[0]) / max(
            len(self.times_s) - 1, 1)
        idx = np.searchsorted(self.times_s, np.mod(t_s, span), side="right") - 1
        idx = np.clip(idx, 0, len(self.times_s) - 1)
        return self.down[idx], self.up[idx]
