"""Predicted vs measured peak memory of real torch training steps on this machine.

Each case runs in a fresh Python process: it imports torch, transformers and peft,
records its resident set (the runtime baseline), builds a GPT-2-small-shaped model
from config with random weights, runs three AdamW steps and reads the kernel's
high-water mark (VmHWM). The prediction is that baseline plus the workload model's
peak plus the allocator's heap retention, measured first on probe models of other
shapes (as `edgetwin calibrate` does) or taken from a profile.
Usage: python benchmarks/memory_vs_measured.py [--quick] [--profile FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

from edgetwin.calibration.allocator import fit_heap_retention, measure_step_memory, retention_probes
from edgetwin.profiles.costmodel import MIB
from edgetwin.profiles.device import load_profile
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import CATALOGUE
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload


@dataclass(frozen=True)
class Case:
    label: str
    method: Method
    setup: TrainingSetup


CASES = (
    Case("gpt2 LoRA r8 c_attn, 2x128", Method("lora", 8, 16.0, ("c_attn",)),
         TrainingSetup(batch=2, seq=128)),
    Case("gpt2 LoRA r16 c_attn,c_proj, 4x128", Method("lora", 16, 32.0, ("c_attn", "c_proj")),
         TrainingSetup(batch=4, seq=128)),
    Case("gpt2 LoRA r8 c_attn, 1x256 x2 accum", Method("lora", 8, 16.0, ("c_attn",)),
         TrainingSetup(batch=1, seq=256, grad_accum=2)),
    Case("gpt2 full FT, 1x128", Method("full"), TrainingSetup(batch=1, seq=128)),
    Case("gpt2 full FT, 2x128", Method("full"), TrainingSetup(batch=2, seq=128)),
)


RETURNING_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="the first LoRA and full case only")
    ap.add_argument("--profile", help="take heap retention from this device profile instead "
                                      "of measuring it on probe models first")
    args = ap.parse_args()
    cases = (CASES[0], CASES[3]) if args.quick else CASES
    regimes = {"glibc": {}, "return": RETURNING_MALLOC}
    if args.profile:
        kept = load_profile(args.profile).memory.heap_retention
        retention = {label: kept for label in regimes}
    else:
        retention = {}
        for label, env in regimes.items():
            fit = fit_heap_retention(retention_probes(quick=args.quick), env=env)
            retention[label] = fit.retention
            print(f"{label}: heap retention {fit.retention:.3f}; {fit.note()}")
    print("\nPeak RSS of three AdamW steps, MiB. 'predicted' = measured runtime baseline + the\n"
          "workload model's peak + heap retention x the memory a step frees. Measured with\n"
          "glibc's defaults, and with MALLOC_MMAP_THRESHOLD_=131072 ('return'), under which\n"
          "freed tensors go back to the OS.\n")
    print(f"{'case':38} {'baseline':>8} {'predicted':>9} {'glibc':>7} {'error':>7} "
          f"{'predicted':>9} {'return':>7} {'error':>7}")
    errors: dict[str, list[float]] = {label: [] for label in regimes}
    for case in cases:
        w = build_workload(CATALOGUE["gpt2"], case.method, case.setup)
        row = []
        for label, env in regimes.items():
            got = measure_step_memory(CATALOGUE["gpt2"], case.method, case.setup.batch,
                                      case.setup.seq, grad_accum=case.setup.grad_accum,
                                      env=env)
            predicted = (got.baseline_bytes + w.memory.peak_bytes
                         + int(retention[label] * w.memory.freed_each_step_bytes))
            err = predicted / got.high_water_bytes - 1
            errors[label].append(err)
            row.append(f"{predicted / MIB:9.0f} {got.high_water_bytes / MIB:7.0f} {err:+7.1%}")
        print(f"{case.label:38} {got.baseline_bytes / MIB:8.0f} {' '.join(row)}", flush=True)
    for label, errs in errors.items():
        print(f"{label:>7}: worst error {max(map(abs, errs)):.1%}, "
              f"median {statistics.median(errs):+.1%} (target: within 15 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
