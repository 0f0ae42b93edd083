"""A scenario's training as the profiles' cost model takes it: the method at a LoRA
rank, and a device group's setup."""

from __future__ import annotations

from edgetwin.emulator.config import GroupConfig, Scenario
from edgetwin.profiles.method import Method
from edgetwin.profiles.training_setup import Sharding, TrainingSetup

# the setup's names for the keys a scenario writes under fleet.groups[i].setup
SETUP_KEYS = {"sharding.budget_mb": "shard_budget_mb", "sharding.encoding": "shard_encoding",
              "sharding.store": "shard_store", "optimizer": "workload.optimizer"}


def method_for(s: Scenario, rank: int) -> Method:
    w = s.workload
    return Method(
        kind=w.method, lora_rank=rank, lora_alpha=w.lora_alpha * rank / w.lora_rank,
        lora_targets=w.lora_targets,
        fedprox_mu=w.fedprox_mu if w.algorithm == "fedprox" else 0.0,
        split_layer=w.split_layer if w.algorithm == "splitlora" else None)


def setup_for(s: Scenario, g: GroupConfig) -> TrainingSetup:
    st = g.setup
    sharding = Sharding(st.shard_budget_mb, st.shard_encoding, st.shard_store) \
        if st.shard_budget_mb else None
    return TrainingSetup(
        batch=st.batch, seq=st.seq, grad_accum=st.grad_accum, dtype=st.dtype,
        autocast=st.autocast,
        optimizer=s.workload.optimizer, activation_checkpointing=st.activation_checkpointing,
        memory_efficient_attention=st.memory_efficient_attention, sharding=sharding,
        serialization=st.serialization or s.network.serialization)
