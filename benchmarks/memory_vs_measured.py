"""Predicted vs measured peak memory of real torch training steps on this machine.

Each case runs in a fresh Python process: it imports torch, transformers and peft,
records its resident set (the runtime baseline), builds a GPT-2-small-shaped model
from config with random weights, runs three AdamW steps and reads the kernel's
high-water mark (VmHWM). The prediction is that baseline plus the workload model's
peak. Usage: python benchmarks/memory_vs_measured.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass

from profiles.costmodel import MIB
from profiles.method import Method
from profiles.models import CATALOGUE
from profiles.setup import TrainingSetup
from profiles.workload import build_workload

WORKER = r"""
import json, sys
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
import torch, transformers, peft
from calibration.hf_models import build_model
from profiles.method import Method
from profiles.models import CATALOGUE
spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
method = Method(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["method"].items()})
# load every module the run needs (a meta-device build allocates no tensor memory)
build_model(CATALOGUE[spec["model"]], method, attn_implementation="eager", device="meta")
baseline = status("VmRSS")
model = build_model(CATALOGUE[spec["model"]], method, attn_implementation="eager")
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4)
gen = torch.Generator().manual_seed(0)
for _ in range(spec["steps"]):
    for _ in range(spec["grad_accum"]):
        ids = torch.randint(0, 50257, (spec["batch"], spec["seq"]), generator=gen)
        loss = model(input_ids=ids, labels=ids).loss / spec["grad_accum"]
        loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
print(json.dumps({"baseline": baseline, "hwm": status("VmHWM")}))
"""


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


def measure(case: Case, threads: int, env: dict[str, str]) -> dict[str, int]:
    spec = {"model": "gpt2", "method": {
        "kind": case.method.kind, "lora_rank": case.method.lora_rank,
        "lora_alpha": case.method.lora_alpha, "lora_targets": list(case.method.lora_targets)},
        "batch": case.setup.batch, "seq": case.setup.seq, "grad_accum": case.setup.grad_accum,
        "steps": 3, "threads": threads}
    out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)], check=True,
                         capture_output=True, text=True, env={**os.environ, **env})
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


RETURNING_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="the first LoRA and full case only")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cases = (CASES[0], CASES[3]) if args.quick else CASES
    print("Peak RSS of three AdamW steps, MiB. 'predicted' = measured runtime baseline + the\n"
          "workload model's peak. Measured twice: with glibc's defaults, and with\n"
          "MALLOC_MMAP_THRESHOLD_=131072, under which freed tensors go back to the OS.\n")
    print(f"{'case':38} {'baseline':>8} {'predicted':>9} {'glibc':>7} {'error':>7} "
          f"{'return':>7} {'error':>7}")
    errors: dict[str, list[float]] = {"glibc": [], "return": []}
    for case in cases:
        w = build_workload(CATALOGUE["gpt2"], case.method, case.setup)
        row = []
        baseline = 0
        for label, env in (("glibc", {}), ("return", RETURNING_MALLOC)):
            got = measure(case, args.threads, env)
            baseline = got["baseline"]
            err = (baseline + w.memory.peak_bytes) / got["hwm"] - 1
            errors[label].append(err)
            row.append(f"{got['hwm'] / MIB:7.0f} {err:+7.1%}")
        predicted = baseline + w.memory.peak_bytes
        print(f"{case.label:38} {baseline / MIB:8.0f} {predicted / MIB:9.0f} {' '.join(row)}")
    for label, errs in errors.items():
        print(f"{label:>7}: worst error {max(map(abs, errs)):.1%}, "
              f"median {sorted(errs)[len(errs) // 2]:+.1%} (target: within 15 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
