"""Profile x workload -> what one optimizer step costs on that device.

Each op is priced by its kind's roofline on the device; storage ops by the
device's storage bandwidth, communication ops (SplitLoRA's per-step activations)
by its network. Device state enters as a speed factor (thermal throttling, a
slower individual unit) and as MobileFineTuner's energy-aware sleep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgetwin.profiles.device import DeviceProfile
from edgetwin.profiles.ops import Op
from edgetwin.profiles.workload import Workload

MB = 1_000_000
MIB = 1024 * 1024


@dataclass(frozen=True)
class StepCost:
    device: str
    step_time_s: float
    compute_time_s: float
    storage_time_s: float
    communication_time_s: float
    sleep_s: float
    step_energy_j: float
    peak_memory_bytes: int  # tensors at their peak, the runtime's footprint, heap kept
    rss_between_steps_bytes: int  # the process's resident set outside forward/backward
    fits_in_memory: bool
    time_by_kind_s: dict[str, float] = field(default_factory=dict)


def op_times_s(profile: DeviceProfile, workload: Workload) -> list[float]:
    """Latency of each op of `workload` once (not times its count), at full speed."""
    out: list[float] = []
    for op in workload.ops:
        if op.kind == "storage":
            rate = profile.storage.write_mb_per_s if "write" in op.name else \
                profile.storage.read_mb_per_s
            out.append(op.bytes / (rate * MB))
        elif op.kind == "communication":
            mbps = profile.network.uplink_mbps if "upload" in op.name else \
                profile.network.downlink_mbps
            out.append(op.bytes * 8 / (mbps * 1e6) + profile.network.rtt_ms / 2000)
        elif op.impl == "fresh_pages" and not _has(profile, "elementwise.fresh_pages"):
            out.append(0.0)  # page-fault costs are only known where calibrated
        else:
            # a page fault costs the same in any phase; calibration measures it once
            phase = "forward" if op.impl == "fresh_pages" else op.phase
            cost = profile.op_cost(op.kind, phase, op.impl)
            out.append(cost.latency_s(op.flops, op.bytes, _mkn(op), op.kernels, op.dtype))
    return out


def _has(profile: DeviceProfile, prefix: str) -> bool:
    return any(k == prefix or k.startswith(prefix + ".") for k in profile.compute)


def _mkn(op: Op) -> tuple[int, int, int] | None:
    """The product dimensions that set a contraction's efficiency."""
    if op.kind == "matmul":
        m, k, n = op.shape
        return m, k, n
    if op.kind == "attention":
        _, _, s_q, s_k, d = op.shape
        return s_q, d, s_k
    return None


def retained_heap_bytes(profile: DeviceProfile, workload: Workload) -> int:
    """Freed activations and gradients the process's allocator still holds, at the
    step's peak and between steps."""
    if not profile.memory.tensors_in_rss:
        return 0
    return int(profile.memory.heap_retention * workload.memory.freed_each_step_bytes)


def predict_step(profile: DeviceProfile, workload: Workload, *, speed_factor: float = 1.0,
                 battery_pct: float = 100.0, temperature_c: float | None = None) -> StepCost:
    """Step time, energy and memory of `workload` on `profile`.

    `speed_factor` < 1 slows compute (throttling, a weaker unit of the same model).
    """
    if temperature_c is None:
        temperature_c = profile.thermal.ambient_c
    compute = storage = comm = energy = compute_energy = host = 0.0
    by_kind: dict[str, float] = {}
    for op, t in zip(workload.ops, op_times_s(profile, workload), strict=True):
        total = t * op.count
        if op.kind == "storage":
            storage += total
            energy += total * profile.power.io_w
        elif op.kind == "communication":
            comm += total
            energy += total * profile.power.io_w
        else:
            cost = profile.op_cost(op.kind, op.phase, op.impl)
            total /= speed_factor
            compute += total
            compute_energy += total * cost.busy_power_w
            host += cost.overhead_s * op.kernels * op.count / speed_factor
        by_kind[op.kind] = by_kind.get(op.kind, 0.0) + total
    if profile.launch == "queued" and compute > 0:
        queued = max(host, compute - host)  # launches overlap the device's work
        compute_energy *= queued / compute
        compute = queued
    energy += compute_energy
    sleep = 0.0
    if workload.setup.energy_aware_sleep is not None:
        sleep = float(workload.setup.energy_aware_sleep.sleep_s(battery_pct, temperature_c))
        energy += sleep * profile.power.idle_w
    runtime = int(profile.memory.runtime_overhead_mb * MIB)
    retained = retained_heap_bytes(profile, workload)  # resident during and between steps
    peak = workload.memory.peak_bytes + runtime + retained
    rss = runtime + retained + (workload.memory.persistent_bytes
                                if profile.memory.tensors_in_rss else 0)
    return StepCost(
        device=profile.name, step_time_s=compute + storage + comm + sleep,
        compute_time_s=compute, storage_time_s=storage, communication_time_s=comm,
        sleep_s=sleep, step_energy_j=energy, peak_memory_bytes=peak,
        rss_between_steps_bytes=rss,
        fits_in_memory=peak <= profile.memory.usable_ram_mb * MIB,
        time_by_kind_s=by_kind)
