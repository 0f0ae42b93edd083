"""Busy and idle power of a GPU read from its NVML energy counter.

Two sustained loads bound what an op draws: a large matrix product (compute-bound,
the contractions' power) and a large elementwise multiply (memory-bound, every
other op's). Each runs for `seconds` between two counter readings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from edgetwin.calibration.meters.nvml import NvmlEnergy


@dataclass(frozen=True)
class PowerReading:
    idle_w: float
    contraction_w: float
    other_w: float


def _average_w(meter: NvmlEnergy, work: Callable[[], object], sync: Callable[[], None],
               seconds: float) -> float:
    work()
    sync()
    start_mj, t0 = meter.read_mj(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        work()
        sync()
    end_mj, elapsed = meter.read_mj(), time.perf_counter() - t0
    return meter.energy_j(start_mj, end_mj) / elapsed


def measure_gpu_power(meter: NvmlEnergy, seconds: float = 2.0) -> PowerReading:
    import torch

    a = torch.randn(4096, 4096, device="cuda")
    x = torch.randn(64 * 1024 * 1024, device="cuda")
    sync = torch.cuda.synchronize
    idle = _average_w(meter, lambda: time.sleep(0.05), sync, seconds)
    contraction = _average_w(meter, lambda: torch.mm(a, a), sync, seconds)
    other = _average_w(meter, lambda: torch.mul(x, x), sync, seconds)
    return PowerReading(idle, contraction, other)
