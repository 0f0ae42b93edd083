"""Physical bounds on fitted costs, measured on the device itself: no op launches faster
than a fraction of an all-but-empty op's time, and none moves bytes much faster than a
large copy. A fit free of them can trade one parameter against another and land on
values (a launch of 1e-23 s, 70 TB/s) that predict the measured shapes but extrapolate
badly to launch-bound small models and other shapes."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from edgetwin.calibration.trace import Measurement

TINY_ELEMENTS = 256  # an add of at most this many elements is all launch
LARGE_BYTES = 32 * 1024 * 1024  # an add moving at least this much runs at DRAM bandwidth
LAUNCH_FLOOR = 0.5  # a kernel's launch overhead is at least this share of a tiny op's time
CACHE_HEADROOM = 2.0  # an op may beat a large copy's bandwidth by this much (cache-resident)


@dataclass(frozen=True)
class Bounds:
    launch_s: float | None  # median time of the tiny adds (None on a GPU)
    copy_bytes_per_s: float | None  # the fastest large add

    @property
    def min_overhead_s(self) -> float | None:
        return None if self.launch_s is None else LAUNCH_FLOOR * self.launch_s

    @property
    def max_bytes_per_s(self) -> float | None:
        return None if self.copy_bytes_per_s is None else \
            CACHE_HEADROOM * self.copy_bytes_per_s

    def describe(self, which: str) -> str:
        """What the bound `which` (overhead_s or bytes_per_s) is, for provenance."""
        if which == "overhead_s" and self.launch_s is not None:
            return (f"overhead_s at its floor, {LAUNCH_FLOOR:g} x an all-but-empty op's "
                    f"{self.launch_s * 1e6:.2f} us")
        if which == "bytes_per_s" and self.copy_bytes_per_s is not None:
            return (f"bytes_per_s at its ceiling, {CACHE_HEADROOM:g} x a large copy's "
                    f"{self.copy_bytes_per_s / 1e9:.1f} GB/s")
        return which


def physical_bounds(measurements: list[Measurement]) -> Bounds:
    """The bounds the suite's tiny and large adds measure (None where none was timed)."""
    adds = [m for m in measurements if m.op == "elementwise" and m.phase == "forward"
            and m.case.split("/")[1] == "add"]
    # a GPU queues its kernels: a lone op's time is a synchronised round trip, not what a
    # launch costs inside a step (nor do its fused optimizers launch what eager would)
    queued = any(str(m.device.get("device", "")).startswith("cuda") for m in measurements)
    tiny = [] if queued else [m.latency_s.median for m in adds if m.shape[0] <= TINY_ELEMENTS]
    large = [m.bytes / m.latency_s.median for m in adds if m.bytes >= LARGE_BYTES]
    return Bounds(statistics.median(tiny) if tiny else None, max(large) if large else None)
