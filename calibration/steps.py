"""Timing whole training steps of real models (forward, backward, AdamW update).

Shared by the in-situ correction, which fits to probe models' steps, and by the
accuracy benchmark, which checks predictions against other models' steps.
"""

from __future__ import annotations

import statistics
import time

from profiles.method import Method
from profiles.models import ModelArch


def time_training_step_s(arch: ModelArch, method: Method, batch: int, seq: int, *,
                         steps: int, device: str = "cpu", warmup: int = 2,
                         seed: int = 0, autocast: str | None = None) -> float:
    """Median wall time of one optimizer step of `arch` under `method`, after warm-up,
    in a fresh process, as a trainer runs: the allocator's state left behind by an
    earlier model (memory kept, pages already faulted in) would otherwise change it.
    `autocast` (fp16 or bf16) runs forward and backward under PyTorch AMP."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_time_in_process, arch, method, batch, seq, steps, device,
                           warmup, seed, torch.get_num_threads(), autocast).result()


def _time_in_process(arch: ModelArch, method: Method, batch: int, seq: int, steps: int,
                     device: str, warmup: int, seed: int, threads: int,
                     autocast: str | None = None) -> float:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)

    from calibration.hf_models import build_model

    model = build_model(arch, method, device=device, attn_implementation="eager")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, arch.vocab, (batch, seq), generator=gen).to(device)
    on_gpu = device.startswith("cuda")
    amp = torch.autocast(device_type=torch.device(device).type, enabled=autocast is not None,
                         dtype=torch.bfloat16 if autocast == "bf16" else torch.float16)
    scaler = torch.amp.GradScaler(enabled=autocast == "fp16")  # fp16 needs loss scaling
    times = []
    for i in range(steps + warmup):
        if on_gpu:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with amp:
            loss = model(input_ids=ids, labels=ids).loss
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if on_gpu:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    del model, opt
    return statistics.median(times)
