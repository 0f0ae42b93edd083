"""What else runs on a device while it is measured: the share of its CPUs that other
processes use, and how much a fixed probe's repeats spread.

A calibration taken while other work shares the device's cores prices every op too
slow, and nothing in its numbers says so. So calibration reads the load before it
measures and again after, records it in the profile (`load`), and says when the device
was busy. The probe's median time is recorded too: a later replay times the same probe
and so sees whether the device has changed since it was calibrated.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgetwin.profiles.device import CalibrationLoad

# a device is busy when other processes use this share of its CPUs, or the fixed probe's
# repeats spread this much (a core shared with other work stalls a good share of the
# repeats by a time slice, longer than the probe itself; an interrupt now and then only a
# few, which the interquartile range leaves out)
BUSY_CPU_SHARE = 0.25
BUSY_SPREAD = 1.0
PROBE_DIM = 384  # a 384 x 384 product: about a millisecond on one core
PROBE_REPEATS = 60
WINDOW_S = 1.0


@dataclass(frozen=True)
class LoadReading:
    other_cpu_share: float  # of the device's CPUs, used by other processes (0-1)
    probe_s: float  # the fixed probe's median time
    probe_spread: float  # interquartile range / median of its repeats
    cpus: int  # the CPUs read (the process's affinity)

    @property
    def busy(self) -> bool:
        return self.other_cpu_share > BUSY_CPU_SHARE or self.probe_spread > BUSY_SPREAD

    def describe(self) -> str:
        return (f"other processes used {self.other_cpu_share:.0%} of its {self.cpus} CPU"
                f"{'s' if self.cpus != 1 else ''}, a fixed probe's repeats spread "
                f"{self.probe_spread:.0%}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cpu_jiffies(cpus: list[int]) -> tuple[int, int] | None:
    """(busy, total) jiffies of these CPUs since boot, from /proc/stat."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    wanted = {f"cpu{c}" for c in cpus}
    for line in lines:
        parts = line.split()
        if parts and parts[0] in wanted:
            v = [int(x) for x in parts[1:9]]  # user nice system idle iowait irq softirq steal
            total += sum(v)
            busy += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return (busy, total) if total else None


def other_cpu_share(window_s: float = WINDOW_S) -> float:
    """The share of this process's CPUs that other processes used over `window_s`, while
    this one slept (0 where /proc/stat cannot be read)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    before, own0 = cpu_jiffies(cpus), _own_cpu_s()
    time.sleep(window_s)
    after, own1 = cpu_jiffies(cpus), _own_cpu_s()
    if before is None or after is None or after[1] <= before[1]:
        return 0.0
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = after[0] - before[0] - (own1 - own0) * hz
    return float(min(1.0, max(0.0, busy / (after[1] - before[1]))))


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def probe_times_s(repeats: int = PROBE_REPEATS) -> list[float]:
    """The fixed probe, timed `repeats` times: a float32 product in torch where it is
    installed (with its threads), numpy's otherwise."""
    try:
        import torch

        a = torch.rand(PROBE_DIM, PROBE_DIM)
        b = torch.rand(PROBE_DIM, PROBE_DIM)
        run: Any = lambda: torch.mm(a, b)  # noqa: E731
    except ImportError:
        import numpy as np

        x = np.random.default_rng(0).random((PROBE_DIM, PROBE_DIM), dtype=np.float32)
        run = lambda: x @ x  # noqa: E731
    for _ in range(5):  # warm-up
        run()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    return out


def measure_load() -> LoadReading:
    """Other processes' CPU share (this process asleep), then the fixed probe."""
    share = other_cpu_share()
    times = sorted(probe_times_s())
    median = statistics.median(times)
    q = statistics.quantiles(times, n=4)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return LoadReading(round(share, 4), round(median, 6),
                       round((q[-1] - q[0]) / median, 4), cpus)


def profile_load(readings: list[tuple[str, LoadReading]]) -> CalibrationLoad | None:
    """The profile's `load`: the busiest reading taken before measurements (a resumed
    calibration reads one each time it starts) and the last one after."""
    before = [r for phase, r in readings if phase == "before"]
    after = [r for phase, r in readings if phase == "after"]
    if not before and not after:
        return None
    worst = max(before, key=lambda r: (r.busy, r.other_cpu_share, r.probe_spread)) \
        if before else after[-1]
    last = after[-1] if after else worst
    return CalibrationLoad(
        other_cpu_share_before=worst.other_cpu_share,
        other_cpu_share_after=last.other_cpu_share, probe_spread_before=worst.probe_spread,
        probe_spread_after=last.probe_spread, probe_s=last.probe_s,
        busy=worst.busy or last.busy)
