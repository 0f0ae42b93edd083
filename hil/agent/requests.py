"""What a replayed session asks of a device: the `session` request's fields.

The model is sent as its architecture facts (the device builds it from its config
with random weights), the method and setup as the workload model knows them, the
download as the real bytes of the round's payload, framed as the setup serializes
it. A native runner, which has no model code, gets the workload's op list instead.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from edgetwin.profiles.method import Method
from edgetwin.profiles.models import ModelArch
from edgetwin.profiles.payload import frame
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import Workload


def session_fields(arch: ModelArch, method: Method, setup: TrainingSetup, steps: int,
                   download: bytes, seed: int, torch_device: str,
                   ops: list[dict[str, Any]] | None = None, timeout_s: float | None = None,
                   max_memory_mb: float | None = None) -> dict[str, Any]:
    """The fields of a `session` request."""
    from edgetwin.hil.agent.protocol import payload_field

    fields: dict[str, Any] = {
        "model": _plain(asdict(arch)), "method": _plain(asdict(method)),
        "setup": setup_field(setup),
        "steps": steps, "download": payload_field(download), "seed": seed,
        "torch_device": torch_device}
    if ops is not None:
        fields["ops"] = ops
    if timeout_s is not None:
        fields["timeout_s"] = timeout_s
    if max_memory_mb is not None:
        fields["max_memory_mb"] = max_memory_mb
    return fields


def setup_field(setup: TrainingSetup) -> dict[str, Any]:
    """The setup as a session request carries it: everything the step was priced with
    that a device runs (sharding and MobileFineTuner's sleep are not replayed)."""
    out: dict[str, Any] = {
        "batch": setup.batch, "seq": setup.seq, "grad_accum": setup.grad_accum,
        "dtype": setup.dtype, "optimizer": setup.optimizer,
        "serialization": setup.serialization}
    if setup.autocast is not None:
        out["autocast"] = setup.autocast
    if setup.activation_checkpointing:
        out["activation_checkpointing"] = True
    if setup.memory_efficient_attention:
        out["memory_efficient_attention"] = True
    return out


def not_replayable(w: Workload, runner: str) -> str | None:
    """Why a session of workload `w` cannot run on a device of this runner as it was
    priced (None: it can)."""
    setup, method = w.setup, w.method
    if method.split_layer is not None:
        return "SplitLoRA is not replayed: a device runs no server half"
    if setup.sharding is not None:
        return "parameter sharding is not replayed: a device holds every weight"
    if setup.energy_aware_sleep is not None:
        return "MobileFineTuner's energy-aware sleep is not replayed"
    if runner == "native":
        if setup.autocast is not None or setup.dtype != "fp32":
            precision = setup.autocast or setup.dtype
            return f"the native runner computes in fp32 only; this session was priced in " \
                   f"{precision}"
        if setup.memory_efficient_attention:
            return "the native runner has no memory-efficient attention kernel"
    return None


def download_payload(w: Workload, seed: int) -> bytes:
    """The global trainable tensors as the server sends them: random values of the
    trainable shapes, framed by the setup's serialization (exactly the workload's
    download bytes)."""
    rng = np.random.default_rng(seed)
    dtype = {"fp32": np.float32, "fp16": np.float16, "bf16": np.float16}[w.setup.dtype]
    tensors = [(shape, (rng.standard_normal(shape) * 0.01).astype(dtype).tobytes())
               for _, shape in w.trainable_tensors]
    return frame(tensors, w.setup.dtype, w.setup.serialization)


def native_ops(w: Workload) -> list[dict[str, Any]]:
    """The compute ops of one optimizer step, in the order they run, for the native
    runner: forward, backward, update; each `count` times."""
    return [{"kind": op.kind, "impl": op.impl, "phase": op.phase, "shape": list(op.shape),
             "flops": op.flops, "bytes": op.bytes, "count": op.count}
            for op in w.ops if op.kind not in ("storage", "communication")]


def probe_field(arch: ModelArch, method: Method, batch: int, seq: int, steps: int,
                seed: int) -> dict[str, Any]:
    """A probe step as the `calibrate` request's `probes` carry it."""
    return {"arch": _plain(asdict(arch)), "method": _plain(asdict(method)),
            "batch": batch, "seq": seq, "steps": steps, "seed": seed}


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
