"""Where a calibration measures: this process (`LocalBench`), or an attached device's
agent (`edgetwin.hil.attached_bench.AgentBench`), behind one interface.

Calibration decides what to measure and fits the profile; a bench only runs the
measurements: op-suite cases, timed sessions of probe models, their resident memory,
the host's memory, storage and power facts, and the load other work puts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edgetwin.calibration.allocator import StepMemory, measure_step_memory
from edgetwin.calibration.load import LoadReading
from edgetwin.calibration.opsuite import Case, measure
from edgetwin.calibration.power import PowerReading
from edgetwin.calibration.probe_models import Probe
from edgetwin.calibration.steps import ProbeSession
from edgetwin.calibration.trace import Measurement


@dataclass(frozen=True)
class Plan:
    """How long each op case is timed, and how many rounds of refinement follow."""

    quick: bool
    min_time_s: float
    max_reps: int
    refine_rounds: int
    refine_per_round: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        return cls(quick, 0.05, 30, 1, 12) if quick else cls(False, 0.25, 200, 3, 40)


@dataclass(frozen=True)
class HostFacts:
    """What a profile records of the machine beyond op costs."""

    ram_mb: float
    available_mb: float
    runtime_overhead_mb: float  # a fresh trainer process before any tensor
    write_mb_per_s: float
    read_mb_per_s: float
    device_class: str  # phone, board, laptop or server
    power: PowerReading | None = None  # measured busy and idle power, where a meter answers


class Bench(Protocol):
    device: str  # the torch device measured: "cpu" or "cuda"
    origin: str  # how the measurements were taken, for the profile's provenance
    heap_retention_measurable: bool  # a CPU process of Python's allocator

    def facts(self) -> dict[str, Any]: ...

    def measure(self, cases: Sequence[Case], plan: Plan,
                record: Callable[[Measurement], None]) -> None: ...

    def probe_sessions(self, probes: Sequence[Probe], steps: int, repeats: int, seed: int
                       ) -> list[list[ProbeSession]]: ...

    def load(self) -> LoadReading | None: ...

    def probe_memory(self, probe: Probe) -> StepMemory: ...

    def host(self, quick: bool) -> HostFacts: ...

    def close(self) -> None: ...


class LocalBench:
    """Measurements in this process (op cases) and fresh child processes (probes)."""

    def __init__(self, device: str, threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.device = device
        self.origin = f"this host ({device})"
        self.heap_retention_measurable = device == "cpu"

    def facts(self) -> dict[str, Any]:
        import torch

        from edgetwin.calibration import host

        return host.facts(self.device, torch.get_num_threads())

    def measure(self, cases: Sequence[Case], plan: Plan,
                record: Callable[[Measurement], None]) -> None:
        facts = self.facts()
        for case in cases:
            record(measure(case, self.device, plan.min_time_s, plan.max_reps, facts))

    def probe_sessions(self, probes: Sequence[Probe], steps: int, repeats: int, seed: int
                       ) -> list[list[ProbeSession]]:
        from edgetwin.calibration.steps import probe_sessions

        return probe_sessions(probes, steps=steps, repeats=repeats, seed=seed,
                              device=self.device)

    def load(self) -> LoadReading | None:
        from edgetwin.calibration.load import measure_load

        return measure_load()

    def probe_memory(self, probe: Probe) -> StepMemory:
        return measure_step_memory(probe.arch, probe.method, probe.batch, probe.seq)

    def host(self, quick: bool) -> HostFacts:
        return measure_host(self.device, quick)

    def close(self) -> None:
        pass


def measure_host(device: str, quick: bool) -> HostFacts:
    """This machine's memory, storage, device class and (on a GPU with NVML) power."""
    from edgetwin.calibration import host

    gpu = device.startswith("cuda")
    total, avail = host.gpu_memory_mb() if gpu else host.memory_mb()
    overhead = host.gpu_runtime_overhead_mb() if gpu else host.runtime_overhead_mb()
    write, read = host.storage_mb_per_s(32 if quick else 256)
    return HostFacts(total, avail, overhead, write, read, host.device_class(),
                     measured_power() if gpu else None)


def measured_power() -> PowerReading | None:
    """Busy and idle power from NVML's energy counter, where it answers."""
    from edgetwin.calibration.meters.nvml import NvmlEnergy
    from edgetwin.calibration.power import measure_gpu_power

    meter = NvmlEnergy.find()
    if meter is None:
        return None
    try:
        return measure_gpu_power(meter)
    except Exception:  # a driver without the energy counter: the power model instead
        return None
