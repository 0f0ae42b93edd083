"""The published runs the shipped reference profiles are built from and checked against.

Figures as published by EdgeFlowerTune and MobileFineTuner (see
profiles/reference/published_measurements.yaml); ranges are min-max across one cohort.
`solve_contraction_rate` is how a published step time becomes a per-op cost: the
one unknown (the device's matmul/attention throughput) is solved so the op list of
the published workload takes the published time, every other op kind priced by
its own (spec or assumed) cost.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from scipy.optimize import brentq

from edgetwin.profiles.costmodel import predict_step
from edgetwin.profiles.device import DeviceProfile, OpCost
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import CATALOGUE
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import Workload, build_workload

LORA_QKVO = Method("lora", lora_rank=8, lora_alpha=32.0,
                   lora_targets=("q_proj", "k_proj", "v_proj", "o_proj"))


@dataclass(frozen=True)
class PublishedRun:
    """One device's cohort in a published federated run."""

    run_id: str
    device: str
    model: str
    method: Method
    setup: TrainingSetup
    step_s: tuple[float, float]
    avg_rss_mb: tuple[float, float]
    upload_bytes_per_round: int
    local_steps: int
    source: str

    def workload(self) -> Workload:
        return build_workload(CATALOGUE[self.model], self.method, self.setup)


PUBLISHED_RUNS: tuple[PublishedRun, ...] = (
    PublishedRun("fedavg-lora-gemma3-270m-8client", "hi-nova-9-pro", "gemma-3-270m", LORA_QKVO,
                 TrainingSetup(batch=8, seq=64, grad_accum=1, serialization="npy"),
                 (170.19, 174.35), (1065.6, 1071.3), 2960640, 10, "efT-profile-doc"),
    PublishedRun("fedavg-lora-gemma3-270m-8client", "jetson-nano-4gb", "gemma-3-270m",
                 LORA_QKVO, TrainingSetup(batch=1, seq=64, grad_accum=8, serialization="raw"),
                 (11.37, 14.13), (589.0, 731.0), 2949120, 10, "efT-profile-doc"),
    PublishedRun("fedavg-lora-gemma3-270m-8client-mmlu", "hi-nova-9-pro", "gemma-3-270m",
                 LORA_QKVO, TrainingSetup(batch=8, seq=64, grad_accum=1, serialization="npy"),
                 (167.37, 171.05), (1069.0, 1072.0), 2960640, 10, "efT-profile-doc"),
    PublishedRun("fedavg-lora-gemma3-270m-8client-mmlu", "jetson-nano-4gb", "gemma-3-270m",
                 LORA_QKVO, TrainingSetup(batch=1, seq=64, grad_accum=8, serialization="raw"),
                 (10.36, 12.33), (601.0, 805.0), 2949120, 10, "efT-profile-doc"),
)


def with_contraction_rate(profile: DeviceProfile, flops_per_s: float) -> DeviceProfile:
    """`profile` with its matmul and attention throughput set to `flops_per_s`."""
    compute = dict(profile.compute)
    for kind in ("matmul", "attention"):
        cost: OpCost = profile.op_cost(kind)
        compute[kind] = dataclasses.replace(cost, flops_per_s=flops_per_s)
    return dataclasses.replace(profile, compute=compute)


def solve_contraction_rate(profile: DeviceProfile, workload: Workload,
                           target_step_s: float) -> float:
    """The matmul/attention FLOP/s at which `workload` takes `target_step_s` on `profile`."""
    def gap(log_rate: float) -> float:
        trial = with_contraction_rate(profile, 10.0 ** log_rate)
        return predict_step(trial, workload).step_time_s - target_step_s

    return float(10.0 ** brentq(gap, 6.0, 16.0, xtol=1e-9))
