"""One training step as a user names it: a model by catalogue name or config.json,
LoRA's rank and targets, the batch, the precision, the memory-saving options. What
`edgetwin workload`'s flags and `edgetwin.price_workload`'s arguments both say; each
turns its input into a `WorkloadSpec`, and `WorkloadSpec.build` gives the workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgetwin.common.errors import InputError
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import load_model
from edgetwin.profiles.training_setup import EnergyAwareSleep, Sharding, TrainingSetup
from edgetwin.profiles.workload import Workload, build_workload


@dataclass(frozen=True)
class WorkloadSpec:
    """A step: `grad_accum` micro-batches of `batch` x `seq` tokens of `model` under
    `method`. An error names the field (`lora_rank`), for the caller to name its own
    flag or argument."""

    model: str  # a catalogue name, or the path of a Hugging Face config.json
    batch: int
    seq: int
    method: Literal["full", "lora"] = "lora"
    lora_rank: int = 8
    lora_alpha: float | None = None  # default: 2 x rank
    lora_targets: tuple[str, ...] | None = None  # default: q_proj, v_proj (c_attn: GPT-2)
    lora_dropout: float = 0.0
    fedprox_mu: float = 0.0
    split_layer: int | None = None
    grad_accum: int = 1
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    autocast: Literal["fp16", "bf16"] | None = None
    optimizer: Literal["adamw", "sgd"] = "adamw"
    activation_checkpointing: bool = False
    memory_efficient_attention: bool = False
    serialization: Literal["raw", "npy", "npy64"] = "raw"
    shard_budget_mb: float | None = None
    shard_encoding: Literal["fp32", "fp16", "int8", "int4"] = "fp16"
    shard_store: Literal["ram", "flash"] = "flash"
    energy_aware_sleep: bool = False

    def build(self) -> Workload:
        try:
            model = load_model(self.model)
        except InputError as err:  # a bad name or path: the field that gave it
            if err.where != "--model":
                raise
            raise InputError("model", err.key, err.problem) from None
        targets = self.lora_targets if self.lora_targets else \
            (("c_attn",) if model.family == "gpt2" else ("q_proj", "v_proj"))
        for name in ("lora_rank", "batch", "seq", "grad_accum"):
            if getattr(self, name) <= 0:
                raise InputError(name, "", f"must be > 0, got {getattr(self, name)}")
        if model.context_length and self.seq > model.context_length:
            raise InputError("seq", "", f"{self.seq} tokens is more than {model.name} "
                             f"accepts (context length {model.context_length} positions)")
        method = Method(kind=self.method, lora_rank=self.lora_rank,
                        lora_alpha=self.lora_alpha if self.lora_alpha is not None
                        else 2.0 * self.lora_rank,
                        lora_targets=tuple(t.strip() for t in targets if t.strip()),
                        lora_dropout=self.lora_dropout, fedprox_mu=self.fedprox_mu,
                        split_layer=self.split_layer)
        sharding = Sharding(self.shard_budget_mb, self.shard_encoding, self.shard_store) \
            if self.shard_budget_mb is not None else None
        setup = TrainingSetup(
            batch=self.batch, seq=self.seq, grad_accum=self.grad_accum, dtype=self.dtype,
            autocast=self.autocast, optimizer=self.optimizer,
            activation_checkpointing=self.activation_checkpointing,
            memory_efficient_attention=self.memory_efficient_attention, sharding=sharding,
            energy_aware_sleep=EnergyAwareSleep() if self.energy_aware_sleep else None,
            serialization=self.serialization)
        try:
            return build_workload(model, method, setup)
        except InputError as err:  # name the field of the spec, not the method's or setup's
            raise InputError(err.key.replace("sharding.", "shard_"), "", err.problem) from None
