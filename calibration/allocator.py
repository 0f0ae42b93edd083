"""Heap retention: how much of the memory a training step frees the allocator keeps.

The workload model counts the tensors alive at a step's peak. The process's
resident high-water mark is higher where the allocator keeps freed memory: glibc
places activations below its (adaptive) mmap threshold in its heap and keeps the
holes they leave when backward frees them; the next step's activations land
partly in those holes and partly beside them. Calibration measures this on probe
models' real steps, as the share of their freed activations still resident at the
peak, and the cost model adds that share of any workload's freed memory.

The probes are mid-sized (hidden 640): probes much smaller than the models people
fine-tune understate the share.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from edgetwin.calibration.probe_models import MID_PROBES, Probe, probe_lora
from edgetwin.profiles.costmodel import MIB
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import ModelArch
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import Workload, build_workload


@dataclass(frozen=True)
class StepMemory:
    """Resident memory of a fresh training process, in bytes."""

    baseline_bytes: int  # libraries loaded, no tensor yet
    high_water_bytes: int  # VmHWM after the steps


STEPS = 3  # the high-water mark settles by the second step


def measure_step_memory(arch: ModelArch, method: Method, batch: int, seq: int, *,
                        steps: int = STEPS, grad_accum: int = 1, seed: int = 0,
                        env: dict[str, str] | None = None) -> StepMemory:
    """Run `steps` AdamW steps in a fresh process and read its resident high-water mark.

    `env` adds environment variables to that process (the allocator's settings are read
    when a process starts)."""
    import torch

    spec = {"arch": dataclasses.asdict(arch), "method": dataclasses.asdict(method),
            "batch": batch, "seq": seq, "steps": steps, "grad_accum": grad_accum, "seed": seed}

    out = subprocess.run(
        [sys.executable, "-m", "edgetwin.calibration.allocator", json.dumps(spec),
         str(torch.get_num_threads())],
        check=True, capture_output=True, text=True, env={**os.environ, **(env or {})})
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return StepMemory(int(got["baseline"]), int(got["hwm"]))


def heap_retention(workload: Workload, measured: StepMemory) -> float:
    """Share of the workload's freed activations and gradients resident beyond its
    predicted peak."""
    beyond = measured.high_water_bytes - measured.baseline_bytes - workload.memory.peak_bytes
    return max(0.0, beyond / max(workload.memory.freed_each_step_bytes, MIB))


def retention_probes(quick: bool) -> list[Probe]:
    out = [Probe(arch, method, batch, seq) for arch in MID_PROBES
           for method, batch, seq in ((probe_lora(arch), 4, 128), (Method("full"), 2, 128))]
    return out[:2] if quick else out


@dataclass(frozen=True)
class RetentionFit:
    retention: float  # median over the probes
    per_probe: tuple[tuple[str, float], ...]

    def note(self) -> str:
        return ("median share of freed activations and gradients still resident at the "
                f"peak, over fresh processes running {STEPS} AdamW steps of probe models: "
                + "; ".join(f"{label} {share:.2f}" for label, share in self.per_probe))


def fit_heap_retention(probes: list[Probe],
                       env: dict[str, str] | None = None) -> RetentionFit:
    """Measure each probe's step memory in a fresh process; the median share kept."""
    return retention_from([(p, measure_step_memory(p.arch, p.method, p.batch, p.seq, env=env))
                           for p in probes])


def retention_from(measured: list[tuple[Probe, StepMemory]]) -> RetentionFit:
    """The median share kept, from probes' measured step memory."""
    shares = []
    for p, got in measured:
        w = build_workload(p.arch, p.method, TrainingSetup(batch=p.batch, seq=p.seq))
        shares.append((p.label, round(heap_retention(w, got), 3)))
    return RetentionFit(round(statistics.median(s for _, s in shares), 3), tuple(shares))


def _tuples(fields: dict[str, Any]) -> dict[str, Any]:
    """JSON turned the dataclasses' tuples into lists; turn them back."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def _run(spec: dict[str, Any], threads: int) -> dict[str, int]:
    """Inside the fresh process: baseline after a meta-device build, then real steps."""
    import warnings

    import torch

    from edgetwin.calibration.hf_models import build_model
    from edgetwin.calibration.meters.procmem import process_memory

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    arch = ModelArch(**_tuples(spec["arch"]))
    method = Method(**_tuples(spec["method"]))
    batch, seq, accum = int(spec["batch"]), int(spec["seq"]), int(spec["grad_accum"])
    build_model(arch, method, device="meta")  # loads every module, allocates no tensor
    baseline = process_memory()["VmRSS"]
    model = build_model(arch, method, seed=int(spec["seed"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator().manual_seed(int(spec["seed"]))
    for _ in range(int(spec["steps"])):
        for _ in range(accum):
            ids = torch.randint(0, arch.vocab, (batch, seq), generator=gen)
            loss = model(input_ids=ids, labels=ids).loss / accum
            loss.backward()  # kept until the next forward, as training loops do
        opt.step()
        opt.zero_grad(set_to_none=True)
    return {"baseline": baseline, "hwm": process_memory()["VmHWM"]}


if __name__ == "__main__":
    print(json.dumps(_run(json.loads(sys.argv[1]), int(sys.argv[2]))))
