"""What a session costs each kind of client: one entry per (group, LoRA rank) in use,
computed once from the device profile and the workload, looked up by index after."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.scenario_checks import resolve_model
from edgetwin.emulator.training import method_for, setup_for
from edgetwin.profiles.costmodel import MIB, predict_step
from edgetwin.profiles.device import DeviceProfile
from edgetwin.profiles.workload import Workload, build_workload


@dataclass(frozen=True)
class GroupCost:
    """What one optimizer step and one round's transfers cost a nominal unit of a group."""

    group: int
    rank: int
    profile: DeviceProfile
    workload: Workload
    step_s: float  # at speed 1, excluding the energy-aware sleep
    step_energy_j: float
    peak_memory_mb: float
    upload_bytes: int
    download_bytes: int
    split_step_bytes: int  # SplitLoRA: up + down per optimizer step
    split_server_s: float  # SplitLoRA: server-side layers per optimizer step
    setup_s: float = 0.0  # a session's cost beyond its steps (profile's SessionCost)
    session_cv: float = 0.0  # how much a session's mean step varies (profile's)

    @property
    def busy_w(self) -> float:
        return self.step_energy_j / self.step_s


@dataclass(frozen=True)
class CostTable:
    """The nominal costs as arrays by cost index, the form sessions and policies use.
    The arrays are shared: a correction written into one (periodic validation's
    recalibration) is seen by both."""

    group: I64  # the group each entry is for
    step_s: F64
    busy_w: F64
    peak_memory_mb: F64
    upload_bytes: F64
    download_bytes: F64
    split_step_bytes: F64
    split_server_s: F64
    setup_s: F64
    session_cv: F64

    @classmethod
    def of(cls, costs: list[GroupCost]) -> CostTable:
        def col(name: str) -> F64:
            return np.array([getattr(c, name) for c in costs], dtype=np.float64)

        return cls(group=np.array([c.group for c in costs], dtype=np.int64),
                   step_s=col("step_s"), busy_w=col("busy_w"),
                   peak_memory_mb=col("peak_memory_mb"), upload_bytes=col("upload_bytes"),
                   download_bytes=col("download_bytes"),
                   split_step_bytes=col("split_step_bytes"),
                   split_server_s=col("split_server_s"), setup_s=col("setup_s"),
                   session_cv=col("session_cv"))

    def scaled(self, step: F64, busy: F64, peak: F64) -> CostTable:
        """Step time, power and peak memory multiplied by per-entry factors."""
        return dataclasses.replace(self, step_s=self.step_s * step, busy_w=self.busy_w * busy,
                                   peak_memory_mb=self.peak_memory_mb * peak)


def group_costs(s: Scenario, profiles: list[DeviceProfile], keys: I64, width: int,
                base: Path) -> list[GroupCost]:
    """One cost table entry per (group, rank) pair in use (`keys`, each
    `group * width + rank`): computed once, looked up after."""
    model = resolve_model(s.workload.model, base)
    costs: list[GroupCost] = []
    for key in keys.tolist():
        gi, r = divmod(int(key), width)
        g = s.fleet.groups[gi]
        w = build_workload(model, method_for(s, r), setup_for(s, g))
        c = predict_step(profiles[gi], w)
        split_bytes = w.step_upload_bytes + w.step_download_bytes
        server_s = 0.0
        if w.method.split_layer is not None:
            whole = build_workload(model, dataclasses.replace(w.method, split_layer=None),
                                   setup_for(s, g))
            server_s = max(0.0, whole.step_flops - w.step_flops) / s.server.flops_per_s
        local_only = s.workload.algorithm == "local_only"
        step_s = c.compute_time_s + c.storage_time_s
        costs.append(GroupCost(
            group=gi, rank=r, profile=profiles[gi], workload=w, step_s=step_s,
            step_energy_j=c.step_energy_j, peak_memory_mb=c.peak_memory_bytes / MIB,
            upload_bytes=0 if local_only else w.payload.upload_bytes,
            download_bytes=0 if local_only else w.payload.download_bytes,
            split_step_bytes=split_bytes, split_server_s=server_s,
            setup_s=profiles[gi].session.setup_s(w.total_params, step_s),
            session_cv=profiles[gi].session.session_cv))
    return costs
