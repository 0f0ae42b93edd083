"""Predicted vs measured training steps of real models this machine never calibrated on.

Builds models from configs with transformers + peft (random weights, eager attention):
GPT-2-small-shaped, Qwen-shaped and Gemma-shaped small configs, LoRA and full
fine-tuning, several batch and sequence sizes. None of these shapes is in the
calibration op suite. Each step (forward, backward, AdamW update) is timed after
warm-up; the prediction is `predict_step` on the given profile.

Usage: python benchmarks/calibration_accuracy.py PROFILE.yaml [--steps N] [--quick]
       [--repeats R] [--passes P] [--device cuda] [--autocast bf16|fp16]

Each step is timed in a fresh process, as a trainer runs. With `--passes 2` every
case is measured again after all the others, and the second pass is predicted twice:
by the profile and by the first pass's measurements. The second score is the
machine's repeatability, the best any profile can do against one pass.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence

from edgetwin.calibration.probe_models import Probe
from edgetwin.calibration.steps import time_training_step_s
from edgetwin.profiles.costmodel import predict_step
from edgetwin.profiles.device import load_profile
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import CATALOGUE, ModelArch
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload

GPT2_SMALL = CATALOGUE["gpt2"]
QWEN_SMALL = ModelArch("qwen-small", "qwen2", 512, 8, 8, 2, 64, 1408, 32000, True, "silu",
                       qkv_bias=True)
GEMMA_SMALL = ModelArch("gemma-small", "gemma3", 384, 6, 4, 1, 128, 1536, 32000, True,
                        "gelu_pytorch_tanh", sliding_window=512)


def label(case: Probe) -> str:
    how = "full" if case.method.kind == "full" else f"lora r{case.method.lora_rank}"
    return f"{case.arch.name} {how} {case.batch}x{case.seq}"


def cases(quick: bool) -> list[Probe]:
    gpt_lora = Method("lora", 8, 16.0, ("c_attn", "c_proj"))
    llama_lora = Method("lora", 16, 32.0, ("q_proj", "k_proj", "v_proj", "o_proj"))
    out = []
    for arch, lora in ((GPT2_SMALL, gpt_lora), (QWEN_SMALL, llama_lora),
                       (GEMMA_SMALL, llama_lora)):
        for method in (lora, Method("full")):
            for batch, seq in ((1, 128), (2, 64), (4, 96), (2, 256)):
                out.append(Probe(arch, method, batch, seq))
    return out[::3] if quick else out


def score(predicted: Sequence[float], measured: Sequence[float]) -> str:
    """Median |error|, the share within +-10 % and the mean signed error, in a line."""
    errors = [p / m - 1 for p, m in zip(predicted, measured, strict=True)]
    absolute = sorted(abs(e) for e in errors)
    within = sum(a <= 0.10 for a in absolute)
    return (f"median |error| {statistics.median(absolute):.1%}; within +-10 %: "
            f"{within}/{len(absolute)} ({within / len(absolute):.0%}); "
            f"mean signed error {statistics.fmean(errors):+.1%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("profile")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a third of the cases")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU profile")
    ap.add_argument("--autocast", choices=["bf16", "fp16"], default=None,
                    help="time and predict the steps under PyTorch AMP")
    ap.add_argument("--repeats", type=int, default=1,
                    help="fresh processes per case and pass; the measured step is their median")
    ap.add_argument("--passes", type=int, default=1,
                    help="measure every case this many times over, one pass after the other")
    args = ap.parse_args()
    if min(args.steps, args.repeats, args.passes) < 1:
        ap.error("--steps, --repeats and --passes must be at least 1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = load_profile(args.profile)
    todo = cases(args.quick)
    predicted = [predict_step(profile, build_workload(
        c.arch, c.method, TrainingSetup(batch=c.batch, seq=c.seq, autocast=args.autocast))
    ).step_time_s for c in todo]
    runs: list[list[list[float]]] = [[] for _ in todo]  # case -> pass -> process medians
    print(f"profile {profile.name}; {args.autocast or 'fp32'}; torch threads "
          f"{torch.get_num_threads()}; "
          f"median of {args.steps} steps after 2 warm-up steps; {args.repeats} fresh "
          f"process(es) a case, {args.passes} pass(es)")
    for n in range(args.passes):
        print(f"{'case':34} {'predicted s':>11} {'measured s':>11} {'error':>8}"
              + (f" {'spread of ' + str(args.repeats) + ' processes':>24}"
                 if args.repeats > 1 else "") + (f"   pass {n + 1}" if args.passes > 1 else ""))
        for i, case in enumerate(todo):
            times = [time_training_step_s(case.arch, case.method, case.batch, case.seq,
                                          steps=args.steps, device=args.device,
                                          autocast=args.autocast)
                     for _ in range(args.repeats)]
            runs[i].append(times)
            measured = statistics.median(times)
            spread = (max(times) - min(times)) / measured
            print(f"{label(case):34} {predicted[i]:11.4f} {measured:11.4f} "
                  f"{predicted[i] / measured - 1:+8.1%}"
                  + (f" {spread:24.1%}" if args.repeats > 1 else ""), flush=True)
    every = [statistics.median([t for p in r for t in p]) for r in runs]
    print(f"profile vs the median of every process: {score(predicted, every)}")
    if args.repeats > 1:
        spreads = [(max(p) - min(p)) / statistics.median(p) for r in runs for p in r]
        print(f"spread (max - min) / median of one case's {args.repeats} processes: median "
              f"{statistics.median(spreads):.1%}, largest {max(spreads):.1%}")
    if args.passes > 1:
        first = [statistics.median(r[0]) for r in runs]
        last = [statistics.median(r[-1]) for r in runs]
        print(f"against the last pass alone, the profile:        {score(predicted, last)}")
        print(f"against the last pass alone, the first pass:     {score(first, last)}"
              "  (the machine's repeatability)")
    print("targets: median <= 5 %, at least 90 % within +-10 %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
