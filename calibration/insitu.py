"""In-situ correction: ops run slower inside a training step than alone in a loop.

A micro-benchmark repeats one op with warm caches and a busy thread pool; inside a
step, operands arrive from other ops, threads wake up, Python runs between kernels.
So calibration also times whole training steps of small probe models (shapes of
their own, not the ones used to validate) and fits factors on the roofline times
and the per-kernel launch overhead actually paid,
    synchronous: measured_step = factor x contraction roofline time
                                 + other_factor x the rest's + overhead_s x launches
    queued (GPU): measured_step = max(overhead_factor x launch time,
                                      factor x device time),
then folds them into every op cost of the profile.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.optimize import least_squares, lsq_linear

from edgetwin.calibration.probe_models import MID_PROBES, SMALL_PROBES, Probe, probe_lora
from edgetwin.profiles.costmodel import op_times_s
from edgetwin.profiles.device import DeviceProfile, OpCost
from edgetwin.profiles.method import Method
from edgetwin.profiles.ops import COMPUTE_KINDS, CONTRACTION_KINDS
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import Workload, build_workload


def probes(quick: bool) -> list[Probe]:
    out = []
    for arch in SMALL_PROBES:
        lora = probe_lora(arch)
        out += [Probe(arch, lora, 3, 80), Probe(arch, Method("full"), 1, 200),
                Probe(arch, Method("full"), 5, 48), Probe(arch, lora, 4, 160)]
    if quick:
        return [p for i, p in enumerate(out) if i % 4 in (0, 1)]
    return out + [Probe(arch, method, batch, seq) for arch in MID_PROBES
                  for method, batch, seq in ((probe_lora(arch), 4, 128),
                                             (Method("full"), 2, 128))]


class StepSplit(NamedTuple):
    contraction_s: float  # roofline time of matmuls and attention, launches excluded
    other_s: float  # roofline time of every other compute op
    launches: float  # kernel launches
    fresh_pages_s: float
    launch_s: float  # launch overhead at the profile's per-kind costs


def split_step(profile: DeviceProfile, w: Workload) -> StepSplit:
    """A step's predicted compute time, split into the parts the correction scales.

    Page faults of fresh allocations are measured as they happen in a step already, so
    they are a fixed part, not corrected."""
    contraction = other = launches = fixed = launch_s = 0.0
    for op, t in zip(w.ops, op_times_s(profile, w), strict=True):
        if op.kind not in COMPUTE_KINDS:
            continue
        if op.impl == "fresh_pages":
            fixed += t * op.count
            continue
        overhead = profile.op_cost(op.kind, op.phase, op.impl).overhead_s * op.kernels
        if op.kind in CONTRACTION_KINDS:
            contraction += (t - overhead) * op.count
        else:
            other += (t - overhead) * op.count
        launches += op.kernels * op.count
        launch_s += overhead * op.count
    return StepSplit(contraction, other, launches, fixed, launch_s)


@dataclass(frozen=True)
class InSitu:
    factor: float  # on contractions' roofline time
    other_factor: float  # on every other op's roofline time
    overhead_s: float  # the launch overhead paid in a step (synchronous devices)
    probes: list[tuple[str, float, float]]  # label, measured, corrected prediction
    overhead_factor: float = 1.0  # on every kind's launch overhead (queued devices)

    @property
    def mape_pct(self) -> float:
        return float(np.mean([abs(p / m - 1) for _, m, p in self.probes]) * 100)


def fit_in_situ(profile: DeviceProfile, measured: list[tuple[Probe, float]],
                min_overhead_s: float = 0.0) -> InSitu:
    """The factors and launch overhead that make the probes' steps come out as timed;
    the overhead no lower than `min_overhead_s` (edgetwin.calibration.bounds)."""
    if profile.launch == "queued":
        return _fit_queued(profile, measured)
    rows, target, labels = [], [], []
    for p, t in measured:
        w = build_workload(p.arch, p.method, TrainingSetup(batch=p.batch, seq=p.seq))
        c, o, k, fixed, _ = split_step(profile, w)
        rows.append([c / t, o / t, k / t])  # relative error weighting
        target.append(1.0 - fixed / t)
        labels.append((p.label, t, (c, o, k, fixed)))
    # an op never runs faster inside a step than alone: factors >= 1, overhead >= 0
    sol = lsq_linear(np.array(rows), np.array(target), bounds=([1.0, 1.0, min_overhead_s],
                                                                [np.inf, np.inf, np.inf]))
    factor, other, overhead = (float(x) for x in sol.x)
    return InSitu(factor, other, overhead, [
        (name, t, factor * c + other * o + overhead * k + fx)
        for name, t, (c, o, k, fx) in labels])


def _fit_queued(profile: DeviceProfile, measured: list[tuple[Probe, float]]) -> InSitu:
    """A step on a queued device costs max(launch time, device time): fit a factor on
    each (both >= 1) to the probes' relative errors."""
    parts = []
    for p, t in measured:
        w = build_workload(p.arch, p.method, TrainingSetup(batch=p.batch, seq=p.seq))
        c, o, _, fixed, launch_s = split_step(profile, w)
        parts.append((p.label, t, launch_s, c + o + fixed))

    def predict(x: np.ndarray, launch_s: float, device_s: float) -> float:
        return float(max(x[0] * launch_s, x[1] * device_s))

    # start from each side alone explaining the probes it can (max() has flat regions)
    start = [max(1.0, float(np.median([t / h for _, t, h, _ in parts]))),
             max(1.0, float(np.median([t / d for _, t, _, d in parts])))]
    start = [start[0], 1.0] if start[0] >= start[1] else [1.0, start[1]]
    sol = least_squares(lambda x: [predict(x, h, d) / t - 1 for _, t, h, d in parts],
                        x0=start, bounds=([1.0, 1.0], [np.inf, np.inf]))
    launch_f, device_f = float(sol.x[0]), float(sol.x[1])
    return InSitu(device_f, device_f, 0.0,
                  [(name, t, predict(sol.x, h, d)) for name, t, h, d in parts],
                  overhead_factor=launch_f)


def apply_in_situ(profile: DeviceProfile, fix: InSitu) -> DeviceProfile:
    """Every op cost slowed by the factor, with the in-step launch overhead."""
    queued = profile.launch == "queued"

    def adjust(key: str, c: OpCost) -> OpCost:
        if key.startswith("elementwise.fresh_pages"):
            return c
        f = fix.factor if key.split(".")[0] in CONTRACTION_KINDS else fix.other_factor
        overhead = c.overhead_s * fix.overhead_factor if queued else fix.overhead_s
        return dataclasses.replace(c, flops_per_s=c.flops_per_s / f, bytes_per_s=c.bytes_per_s / f,
                                   overhead_s=overhead, precision_flops_per_s={
                                       k: v / f for k, v in c.precision_flops_per_s.items()})

    return dataclasses.replace(profile, compute={k: adjust(k, c)
                                                 for k, c in profile.compute.items()})
