"""What the agent runs in a child process, one request each: a training session, or
a stage of calibration. Events go back to the agent through a pipe; the agent
bounds the child's wall time and memory and kills it when it oversteps.

A session is what a federated client does in a round: the downloaded weights
loaded into the trainable tensors, `steps` optimizer steps of `grad_accum`
micro-batches, the trained tensors serialized for upload. The model is built
from its config with random weights (LoRA by PEFT); nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from edgetwin.profiles.method import Method
from edgetwin.profiles.models import ModelArch
from edgetwin.profiles.payload import frame, unframe
from edgetwin.profiles.schema import from_mapping
from edgetwin.profiles.training_setup import TrainingSetup

Send = Callable[[dict[str, Any]], None]
MIB = 1024 * 1024


def run(task: str, spec: dict[str, Any], conn: Connection, threads: int | None) -> None:
    """Child entry point: run `task`, end with a `result` or an `error` event."""
    _die_with_parent()
    send: Send = conn.send
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        result = TASKS[task](spec, send, threads)
        send({"event": "result", **result})
    except Exception as err:  # reported to the host as one line; the agent serves on
        send({"event": "error", "code": "failed", "message": f"{type(err).__name__}: {err}"})
    finally:
        conn.close()


def _die_with_parent() -> None:
    """Linux: the child is killed when the agent dies, so a dropped link leaves no
    training running on the device."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# --- sessions -----------------------------------------------------------------------------
def session(spec: dict[str, Any], send: Send, threads: int | None) -> dict[str, Any]:
    """One federated session as it was priced: the setup's precision (`autocast`, as
    PyTorch AMP over fp32 weights), activation checkpointing and attention kernel."""
    import torch

    from edgetwin.calibration.hf_models import build_model
    from edgetwin.calibration.meters.energy import find_energy_meter
    from edgetwin.calibration.meters.procmem import process_memory, reset_peak

    reset_peak()
    arch = from_mapping(ModelArch, spec["model"], "session", "model")
    method = from_mapping(Method, spec["method"], "session", "method")
    setup = from_mapping(TrainingSetup, spec["setup"], "session", "setup")
    method.validate(arch, "session.method")
    setup.validate("session.setup")
    device = spec["torch_device"]
    gpu = device == "cuda"
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    attention = "sdpa" if setup.memory_efficient_attention else "eager"
    model = build_model(arch, method, device=device, dtype=setup.dtype, seed=spec["seed"],
                        attn_implementation=attention)
    if setup.activation_checkpointing:
        model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable = [p for p in model.parameters() if p.requires_grad]
    applied = _load_download(trainable, spec["download"], setup)
    anchor = [p.detach().clone() for p in trainable] if method.fedprox_mu > 0 else []
    opt: Any = torch.optim.AdamW(trainable, lr=1e-5) if setup.optimizer == "adamw" else \
        torch.optim.SGD(trainable, lr=1e-4)
    amp = torch.autocast(device_type=torch.device(device).type,
                         enabled=setup.autocast is not None,
                         dtype=torch.bfloat16 if setup.autocast == "bf16" else torch.float16)
    scaler = torch.amp.GradScaler(enabled=setup.autocast == "fp16")  # fp16 scales the loss
    gen = torch.Generator().manual_seed(spec["seed"])
    load_s = time.perf_counter() - t0
    meter = find_energy_meter(gpu)
    times: list[float] = []
    energy = 0.0
    for step in range(spec["steps"]):
        e0 = meter.read_j() if meter else 0.0
        if gpu:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(setup.grad_accum):
            ids = torch.randint(0, arch.vocab, (setup.batch, setup.seq), generator=gen)
            ids = ids.to(device)
            with amp:
                loss = model(input_ids=ids, labels=ids).loss / setup.grad_accum
                if anchor:  # FedProx: mu/2 ||w - w_global||^2 over what is trained
                    loss = loss + method.fedprox_mu / 2 * sum(
                        ((p - a) ** 2).sum() for p, a in zip(trainable, anchor, strict=True))
            scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if gpu:
            torch.cuda.synchronize()
        dt = time.perf_counter() - start
        step_j = meter.read_j() - e0 if meter else None
        energy += step_j or 0.0
        times.append(dt)
        send({"event": "step", "step": step, "time_s": dt,
              "rss_mb": process_memory()["VmRSS"] / MIB, "energy_j": step_j})
    t_serialize = time.perf_counter()
    upload = frame([(tuple(p.shape), _tensor_bytes(p, setup.dtype)) for p in trainable],
                   setup.dtype, setup.serialization)
    from edgetwin.hil.agent.protocol import payload_field

    field = payload_field(upload)
    # the host times the upload's transfer from this event on; serialising came before
    send({"event": "serialized", "serialize_s": time.perf_counter() - t_serialize})
    send({"event": "upload", **field})
    peak = process_memory()
    peak_mb = (torch.cuda.max_memory_allocated() / MIB + 0.0) if gpu else \
        peak.get("VmHWM", peak["VmRSS"]) / MIB
    if meter:
        meter.close()
    return {"steps": len(times), "step_time_s": times, "load_s": load_s,
            "peak_memory_mb": peak_mb, "energy_j": energy if meter else None,
            "meter": meter.name if meter else None, "download_applied": applied,
            "upload_bytes": len(upload), "trainable_tensors": len(trainable)}


def _load_download(trainable: list[Any], payload: bytes, setup: TrainingSetup) -> bool:
    """Copy the downloaded tensors into the trainable ones, in order, where the payload
    was framed for exactly these shapes; report whether it was."""
    import numpy as np
    import torch

    shapes = [tuple(p.shape) for p in trainable]
    try:
        parts = unframe(payload, shapes, setup.dtype, setup.serialization)
    except ValueError:
        return False
    np_dtype = {"fp32": np.float32, "fp16": np.float16, "bf16": np.uint16}[setup.dtype]
    with torch.no_grad():
        for p, data in zip(trainable, parts, strict=True):
            arr = np.frombuffer(data, dtype=np_dtype).reshape(p.shape)
            t = torch.from_numpy(arr.copy())
            if setup.dtype == "bf16":
                t = t.view(torch.bfloat16)
            p.copy_(t.to(p.dtype))
    return True


def _tensor_bytes(p: Any, dtype: str) -> bytes:
    import torch

    target = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    t = p.detach().to("cpu", target).contiguous()
    return bytes(t.view(torch.uint8).numpy().tobytes())


# --- calibration ----------------------------------------------------------------------------
def calibrate_ops(spec: dict[str, Any], send: Send, threads: int | None) -> dict[str, Any]:
    import torch

    from edgetwin.calibration import host
    from edgetwin.calibration.opsuite import Case, measure

    device = spec["torch_device"]
    facts = host.facts(device, torch.get_num_threads())
    journal = Path(spec["journal"]) if spec.get("journal") else None
    for c in spec["cases"]:
        case = Case(c["op"], c["impl"], c["phase"], tuple(c["shape"]), c["flops"],
                    c["bytes"], c["kernels"])
        line = measure(case, device, spec["min_time_s"], spec["max_reps"], facts).to_json()
        if journal:  # the device's own copy: what a dropped link did not carry is here
            with journal.open("a") as fh:
                fh.write(line + "\n")
        send({"event": "measurement", "trace": line})
    return {"measured": len(spec["cases"])}


def calibrate_probes(spec: dict[str, Any], send: Send, threads: int | None) -> dict[str, Any]:
    """Probe sessions, each forked from this worker (which imported the training
    libraries and ran no op), as the agent forks a replayed session."""
    import torch

    from edgetwin.calibration.probe_models import Probe
    from edgetwin.calibration.steps import WARMUP_STEPS, forked_sessions

    specs = spec["probes"]
    probes = [Probe(*_probe_model(p), p["batch"], p["seq"]) for p in specs]
    first = specs[0] if specs else {}
    for i, r, setup_s, times in forked_sessions(
            probes, WARMUP_STEPS + first.get("steps", 3), first.get("repeats", 1),
            spec["torch_device"], first.get("seed", 0), threads or torch.get_num_threads()):
        send({"event": "probe_session", "index": i, "repeat": r, "setup_s": setup_s,
              "step_times_s": times})
    return {"measured": len(specs)}


def calibrate_load(spec: dict[str, Any], send: Send, threads: int | None) -> dict[str, Any]:
    from edgetwin.calibration.load import measure_load

    return {"load": measure_load().to_json()}


def calibrate_retention(spec: dict[str, Any], send: Send, threads: int | None
                        ) -> dict[str, Any]:
    from edgetwin.calibration.allocator import measure_step_memory

    for i, p in enumerate(spec["probes"]):
        arch, method = _probe_model(p)
        got = measure_step_memory(arch, method, p["batch"], p["seq"], seed=p["seed"])
        send({"event": "retention", "index": i, **asdict(got)})
    return {"measured": len(spec["probes"])}


def calibrate_host(spec: dict[str, Any], send: Send, threads: int | None) -> dict[str, Any]:
    from edgetwin.calibration.bench import measure_host

    return {"host": asdict(measure_host(spec["torch_device"], spec["quick"]))}


def facts(spec: dict[str, Any], send: Send, threads: int | None) -> dict[str, Any]:
    """What needs torch imported: its version and the GPU."""
    import torch

    out: dict[str, Any] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                           "cuda": torch.cuda.is_available()}
    if out["cuda"]:
        out["gpu"] = torch.cuda.get_device_name(0)
        out["gpu_memory_mb"] = torch.cuda.get_device_properties(0).total_memory / MIB
    return {"facts": out}


def _probe_model(p: dict[str, Any]) -> tuple[ModelArch, Method]:
    arch = from_mapping(ModelArch, p["arch"], "probe", "arch")
    method = from_mapping(Method, p["method"], "probe", "method")
    method.validate(arch, "probe.method")
    return arch, method


TASKS: dict[str, Callable[[dict[str, Any], Send, int | None], dict[str, Any]]] = {
    "session": session, "ops": calibrate_ops, "probes": calibrate_probes,
    "retention": calibrate_retention, "host": calibrate_host, "facts": facts,
    "load": calibrate_load,
}
