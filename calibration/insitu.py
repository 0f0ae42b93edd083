"""In-situ correction: ops run slower inside a training step than alone in a loop.

A micro-benchmark repeats one op with warm caches and a busy thread pool; inside a
step, operands arrive from other ops, threads wake up, Python runs between kernels.
So calibration also times whole training steps of small probe models (shapes of
their own, not the ones used to validate) and fits two numbers: a factor on every
kind's roofline time and the per-kernel launch overhead actually paid,
    measured_step = factor x contraction roofline time + other_factor x the rest's
                    + overhead_s x kernel launches,
then folds them into every op cost of the profile.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear

from profiles.costmodel import op_times_s
from profiles.device import DeviceProfile, OpCost
from profiles.method import Method
from profiles.models import ModelArch
from profiles.ops import COMPUTE_KINDS, CONTRACTION_KINDS
from profiles.setup import TrainingSetup
from profiles.workload import Workload, build_workload

PROBE_MODELS = (
    ModelArch("probe-llama", "llama", 448, 4, 7, 7, 64, 1216, 16000, False, "silu"),
    ModelArch("probe-gpt2", "gpt2", 320, 6, 5, 5, 64, 1280, 20000, True, "gelu_new",
              max_positions=512, qkv_bias=True, dropout=0.1),
    ModelArch("probe-gemma", "gemma3", 256, 4, 2, 1, 128, 1024, 24000, True,
              "gelu_pytorch_tanh", sliding_window=512),
)


@dataclass(frozen=True)
class Probe:
    arch: ModelArch
    method: Method
    batch: int
    seq: int


def probes(quick: bool) -> list[Probe]:
    out = []
    for arch in PROBE_MODELS:
        lora = Method("lora", 8, 16.0, ("c_attn",) if arch.family == "gpt2"
                      else ("q_proj", "v_proj"))
        out += [Probe(arch, lora, 3, 80), Probe(arch, Method("full"), 1, 200),
                Probe(arch, Method("full"), 5, 48), Probe(arch, lora, 4, 160)]
    return [p for i, p in enumerate(out) if i % 4 in (0, 1)] if quick else out


def time_step_s(p: Probe, steps: int) -> float:
    import torch

    from calibration.hf_models import build_model

    model = build_model(p.arch, p.method, attn_implementation="eager")
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-5)
    ids = torch.randint(0, p.arch.vocab, (p.batch, p.seq),
                        generator=torch.Generator().manual_seed(1))
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def split_step(profile: DeviceProfile, w: Workload) -> tuple[float, float, float, float]:
    """(contraction roofline s, other roofline s, kernel launches, fresh-page s) of a step.

    Page faults of fresh allocations are measured as they happen in a step already, so
    they are a fixed part, not corrected."""
    contraction = other = launches = fixed = 0.0
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
    return contraction, other, launches, fixed


@dataclass(frozen=True)
class InSitu:
    factor: float  # on contractions' roofline time
    other_factor: float  # on every other op's roofline time
    overhead_s: float
    probes: list[tuple[str, float, float]]  # label, measured, corrected prediction

    @property
    def mape_pct(self) -> float:
        return float(np.mean([abs(p / m - 1) for _, m, p in self.probes]) * 100)


def fit_in_situ(profile: DeviceProfile, measured: list[tuple[Probe, float]]) -> InSitu:
    rows, target, labels = [], [], []
    for p, t in measured:
        w = build_workload(p.arch, p.method, TrainingSetup(batch=p.batch, seq=p.seq))
        c, o, k, fixed = split_step(profile, w)
        rows.append([c / t, o / t, k / t])  # relative error weighting
        target.append(1.0 - fixed / t)
        labels.append((f"{p.arch.name} {p.method.kind} {p.batch}x{p.seq}", t, (c, o, k, fixed)))
    # an op never runs faster inside a step than alone: factors >= 1, overhead >= 0
    sol = lsq_linear(np.array(rows), np.array(target), bounds=([1.0, 1.0, 0.0],
                                                                [np.inf, np.inf, np.inf]))
    factor, other, overhead = (float(x) for x in sol.x)
    return InSitu(factor, other, overhead, [
        (name, t, factor * c + other * o + overhead * k + fx)
        for name, t, (c, o, k, fx) in labels])


def apply_in_situ(profile: DeviceProfile, fix: InSitu) -> DeviceProfile:
    """Every op cost slowed by the factor, with the in-step launch overhead."""
    def adjust(key: str, c: OpCost) -> OpCost:
        if key.startswith("elementwise.fresh_pages"):
            return c
        f = fix.factor if key.split(".")[0] in CONTRACTION_KINDS else fix.other_factor
        return dataclasses.replace(c, flops_per_s=c.flops_per_s / f, bytes_per_s=c.bytes_per_s / f,
                                   overhead_s=fix.overhead_s)

    return dataclasses.replace(profile, compute={k: adjust(k, c)
                                                 for k, c in profile.compute.items()})
