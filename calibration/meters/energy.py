"""Whichever energy meter a device has, behind one reading: joules since it was opened.

Counters (RAPL, NVML total energy) are read directly; power-only meters (Jetson
INA3221 rails, an Android battery's current and voltage) are sampled by a thread
and integrated. `find_energy_meter` returns None where nothing is readable, and
callers report energy as unknown rather than estimated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgetwin.calibration.meters.android import QUIRKS, discharge_w
from edgetwin.calibration.meters.ina3221 import read_rails_mw
from edgetwin.calibration.meters.nvml import NvmlEnergy
from edgetwin.calibration.meters.rapl import Rapl
from edgetwin.calibration.meters.tegrastats import TOTAL_RAILS

ANDROID_BATTERY = Path("/sys/class/power_supply/battery")
INA3221_ROOTS = (Path("/sys/bus/i2c/drivers/ina3221"), Path("/sys/bus/i2c/drivers/ina3221x"))


class EnergyMeter:
    """Joules drawn since the meter was opened; `name` says which meter it is."""

    def __init__(self, name: str, read_j: Callable[[], float],
                 stop: Callable[[], None] | None = None) -> None:
        self.name = name
        self._read_j = read_j
        self._stop = stop

    def read_j(self) -> float:
        return self._read_j()

    def close(self) -> None:
        if self._stop:
            self._stop()


def _rapl(meter: Rapl) -> EnergyMeter:
    last = meter.read()
    total = [0.0]

    def read_j() -> float:  # accumulate so that a wrap between readings is counted once
        nonlocal last
        now = meter.read()
        total[0] += meter.energy_j(last, now)
        last = now
        return total[0]

    return EnergyMeter(f"RAPL {meter.domain.name}", read_j)


def _nvml(meter: NvmlEnergy) -> EnergyMeter:
    start = meter.read_mj()
    return EnergyMeter("NVML total energy", lambda: meter.energy_j(start, meter.read_mj()))


def sampled(name: str, power_w: Callable[[], float], period_s: float = 0.05) -> EnergyMeter:
    """Integrate a power reading sampled every `period_s` by the trapezoid rule."""
    lock = threading.Lock()
    state = {"energy": 0.0, "t": time.perf_counter(), "p": power_w()}
    stop = threading.Event()

    def sample() -> None:
        t, p = time.perf_counter(), power_w()
        with lock:
            state["energy"] += (t - state["t"]) * (p + state["p"]) / 2
            state["t"], state["p"] = t, p

    def loop() -> None:
        while not stop.wait(period_s):
            sample()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def read_j() -> float:
        sample()
        with lock:
            return state["energy"]

    def close() -> None:
        stop.set()
        thread.join(timeout=1.0)

    return EnergyMeter(name, read_j, close)


def _rail_w(root: Path, rail: str) -> Callable[[], float]:
    return lambda: read_rails_mw(root)[rail] / 1000.0


def _ina3221() -> EnergyMeter | None:
    for root in INA3221_ROOTS:
        if not root.exists():
            continue
        try:
            rails = read_rails_mw(root)
        except Exception:  # unreadable rails: no meter
            continue
        total = next((r for r in TOTAL_RAILS if r in rails), None)
        if total is None:
            continue
        return sampled(f"INA3221 {total}", _rail_w(root, total))
    return None


def _android() -> EnergyMeter | None:
    current, voltage = ANDROID_BATTERY / "current_now", ANDROID_BATTERY / "voltage_now"
    if not (current.exists() and voltage.exists()):
        return None
    quirks = QUIRKS["default"]
    try:
        discharge_w(current.read_text(), voltage.read_text(), quirks)
    except Exception:  # unreadable battery: no meter
        return None
    return sampled("Android battery", lambda: discharge_w(current.read_text(),
                                                           voltage.read_text(), quirks))


def find_energy_meter(gpu: bool = False) -> EnergyMeter | None:
    """The best meter this device has for the work at hand, or None."""
    if gpu:
        nvml = NvmlEnergy.find()
        if nvml is not None:
            return _nvml(nvml)
    for find in (_ina3221, _android):
        meter = find()
        if meter is not None:
            return meter
    rapl = Rapl.find()
    return _rapl(rapl) if rapl is not None else None


def readable_meters() -> list[str]:
    """Names of the power and memory meters this device lets edgetwin read."""
    names = ["/proc status (memory)"] if Path("/proc/self/status").exists() else []
    if Rapl.find() is not None:
        names.append("RAPL")
    if NvmlEnergy.find() is not None:
        names.append("NVML")
    if any(root.exists() for root in INA3221_ROOTS):
        names.append("INA3221")
    if (ANDROID_BATTERY / "current_now").exists():
        names.append("Android battery")
    return names
