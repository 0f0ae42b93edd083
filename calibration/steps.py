"""Timing whole training steps of real models (forward, backward, AdamW update).

Shared by the in-situ correction, which fits to probe models' steps, and by the
accuracy benchmark, which checks predictions against other models' steps. Calibration
times whole probe sessions, several of each (`probe_sessions`): a session's set-up, its
first step and the steps after, and how much they vary from one session to the next.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from edgetwin.calibration.probe_models import Probe
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import ModelArch


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

    from edgetwin.calibration.hf_models import build_model

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


WARMUP_STEPS = 2  # steps before a session's steady ones (the first is the cold one)


@dataclass(frozen=True)
class ProbeSession:
    """One probe training session, as a federated client runs one: its set-up (model
    built with random weights, optimizer made) and every optimizer step, the first
    included."""

    setup_s: float
    step_times_s: tuple[float, ...]

    @property
    def total_s(self) -> float:
        """The session's compute: its set-up and every step."""
        return self.setup_s + sum(self.step_times_s)

    @property
    def steady(self) -> list[float]:
        return list(self.step_times_s[WARMUP_STEPS:]) or list(self.step_times_s)

    @property
    def steady_s(self) -> float:
        """Its steady step: the median of the steps after warm-up."""
        return float(statistics.median(self.steady))

    @property
    def first_extra(self) -> float:
        """What the first step took beyond a steady one, as a share of it."""
        return self.step_times_s[0] / self.steady_s - 1.0

    @property
    def step_cv(self) -> float:
        steady = self.steady
        return statistics.stdev(steady) / statistics.fmean(steady) if len(steady) > 1 else 0.0


def probe_sessions(probes: Sequence[Probe], *, steps: int, repeats: int, device: str = "cpu",
                   seed: int = 0, threads: int | None = None) -> list[list[ProbeSession]]:
    """Per probe, `repeats` sessions of `WARMUP_STEPS + steps` steps, each in a process of
    its own forked from a fresh interpreter that imported the training libraries once (as
    an attached device's agent runs a session): the allocator starts clean every time.
    The repeats are interleaved (every probe once, then again), so that a device's drift
    over the measurements shows in the spread between a probe's sessions."""
    import json
    import subprocess
    import sys

    import torch

    spec = {"probes": [{"arch": dataclasses.asdict(p.arch), "method": dataclasses.asdict(
        p.method), "batch": p.batch, "seq": p.seq} for p in probes],
            "steps": WARMUP_STEPS + steps, "repeats": repeats, "device": device, "seed": seed,
            "threads": threads or torch.get_num_threads()}
    done = subprocess.run([sys.executable, "-m", "edgetwin.calibration.steps", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"probe sessions failed: {last}")
    out: list[list[ProbeSession]] = [[] for _ in probes]
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            out[d["index"]].append(ProbeSession(d["setup_s"], tuple(d["step_times_s"])))
    return out


def forked_sessions(probes: Sequence[Probe], steps: int, repeats: int, device: str, seed: int,
                    threads: int) -> Iterator[tuple[int, int, float, list[float]]]:
    """(probe index, repeat, set-up, step times) of each session, as it ends: every probe
    once, then again, each session forked from this process (which must have imported
    the training libraries and run no op)."""
    import multiprocessing

    import peft  # noqa: F401 - imported once, before the sessions fork
    import torch  # noqa: F401
    import transformers  # noqa: F401

    ctx = multiprocessing.get_context("fork")
    for r in range(repeats):
        for i, p in enumerate(probes):
            receive, send = ctx.Pipe(duplex=False)
            child = ctx.Process(target=_one_session, args=(
                send, p.arch, p.method, p.batch, p.seq, steps, device, seed + r, threads))
            child.start()
            send.close()
            try:
                setup_s, times = receive.recv()
            except EOFError:
                raise RuntimeError(f"a probe session of {p.label} died (exit code "
                                   f"{child.exitcode})") from None
            finally:
                child.join()
            yield i, r, setup_s, times


def _one_session(conn: Any, arch: ModelArch, method: Method, batch: int, seq: int,
                 steps: int, device: str, seed: int, threads: int) -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    from edgetwin.calibration.hf_models import build_model

    on_gpu = device.startswith("cuda")
    t0 = time.perf_counter()
    model = build_model(arch, method, device=device, attn_implementation="eager", seed=seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    gen = torch.Generator().manual_seed(seed)
    setup_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        if on_gpu:
            torch.cuda.synchronize()
        t = time.perf_counter()
        ids = torch.randint(0, arch.vocab, (batch, seq), generator=gen).to(device)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if on_gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    conn.send((setup_s, times))
    conn.close()


if __name__ == "__main__":  # probe_sessions' fresh interpreter: a session a line
    import json
    import sys

    from edgetwin.profiles.schema import from_mapping

    _spec = json.loads(sys.argv[1])
    _probes = [Probe(from_mapping(ModelArch, p["arch"], "probe"),
                     from_mapping(Method, p["method"], "probe"), p["batch"], p["seq"])
               for p in _spec["probes"]]
    for _i, _r, _setup, _times in forked_sessions(_probes, _spec["steps"], _spec["repeats"],
                                                  _spec["device"], _spec["seed"],
                                                  _spec["threads"]):
        print(json.dumps({"index": _i, "repeat": _r, "setup_s": _setup,
                          "step_times_s": _times}), flush=True)
