"""Invariants of the workload model over many models, methods and setups."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetwin.profiles.costmodel import predict_step
from edgetwin.profiles.device import load_profile
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import CATALOGUE
from edgetwin.profiles.modules import linears
from edgetwin.profiles.training_setup import EnergyAwareSleep, Sharding, TrainingSetup
from edgetwin.profiles.workload import build_workload

models = st.sampled_from(["gpt2", "gemma-3-270m", "qwen2.5-0.5b"])
methods = st.one_of(
    st.just(Method("full")),
    st.builds(lambda r: Method("lora", r, 2.0 * r, ("all-linear",)),
              st.integers(min_value=1, max_value=64)))
setups = st.builds(TrainingSetup, batch=st.integers(1, 8), seq=st.integers(8, 256),
                   grad_accum=st.integers(1, 4),
                   dtype=st.sampled_from(["fp32", "bf16"]),
                   activation_checkpointing=st.booleans(),
                   memory_efficient_attention=st.booleans())
PHONE = load_profile("hi-nova-9-pro")


@settings(max_examples=40, deadline=None)
@given(models, methods, setups)
def test_costs_are_positive_and_memory_adds_up(name: str, method: Method,
                                               setup: TrainingSetup) -> None:
    w = build_workload(CATALOGUE[name], method, setup)
    assert all(op.flops >= 0 and op.bytes >= 0 and op.count >= 1 for op in w.ops)
    m = w.memory
    assert m.peak_bytes >= m.persistent_bytes > 0
    assert w.trainable_params == sum(math.prod(shape) for _, shape in w.trainable_tensors)
    if method.kind == "full":  # every unique weight, a tied output head counted once
        assert w.trainable_params == w.total_params > 0
    else:  # an A (r x in) and a B (out x r) per targeted projection, beside the frozen base
        adapters = sum(method.lora_rank * (lin.in_features + lin.out_features)
                       for lin in linears(CATALOGUE[name]) if method.is_lora_target(lin))
        assert 0 < w.trainable_params == adapters < w.total_params
    c = predict_step(PHONE, w)
    assert c.step_time_s > 0 and c.step_energy_j > 0


@settings(max_examples=25, deadline=None)
@given(models, methods, setups)
def test_accumulation_multiplies_flops_and_keeps_payload(name: str, method: Method,
                                                         setup: TrainingSetup) -> None:
    one = build_workload(CATALOGUE[name], method, dataclasses.replace(setup, grad_accum=1))
    three = build_workload(CATALOGUE[name], method, dataclasses.replace(setup, grad_accum=3))
    assert abs(three.step_flops - 3 * one.step_flops) <= 1e-9 * three.step_flops
    assert three.payload == one.payload and three.trainable_params == one.trainable_params


@settings(max_examples=25, deadline=None)
@given(models, methods, setups)
def test_memory_savers_save_memory(name: str, method: Method, setup: TrainingSetup) -> None:
    base = dataclasses.replace(setup, activation_checkpointing=False,
                               memory_efficient_attention=False)
    plain = build_workload(CATALOGUE[name], method, base)
    ckpt = build_workload(CATALOGUE[name], method,
                          dataclasses.replace(base, activation_checkpointing=True))
    fused = build_workload(CATALOGUE[name], method,
                           dataclasses.replace(base, memory_efficient_attention=True))
    assert ckpt.memory.activations_bytes <= plain.memory.activations_bytes
    assert ckpt.step_flops > plain.step_flops  # the recomputed forward
    assert fused.memory.activations_bytes <= plain.memory.activations_bytes


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8))
def test_bigger_batches_need_more_memory(b1: int, b2: int) -> None:
    lo, hi = sorted((b1, b2))
    m = Method("lora", 8, 16.0, ("q_proj", "v_proj"))
    small = build_workload(CATALOGUE["qwen2.5-0.5b"], m, TrainingSetup(batch=lo, seq=64))
    big = build_workload(CATALOGUE["qwen2.5-0.5b"], m, TrainingSetup(batch=hi, seq=64))
    assert small.memory.peak_bytes <= big.memory.peak_bytes


def test_sharding_trades_memory_for_storage_time() -> None:
    m = Method("lora", 8, 32.0, ("q_proj", "k_proj", "v_proj", "o_proj"))
    plain = build_workload(CATALOGUE["gemma-3-270m"], m, TrainingSetup(batch=8, seq=64))
    sharded = build_workload(CATALOGUE["gemma-3-270m"], m, TrainingSetup(
        batch=8, seq=64, sharding=Sharding(budget_mb=512, encoding="int8", store="flash")))
    assert sharded.memory.weights_bytes == 512 * 1024 * 1024
    assert sharded.memory.peak_bytes < plain.memory.peak_bytes
    slow, fast = predict_step(PHONE, sharded), predict_step(PHONE, plain)
    assert slow.storage_time_s > 0 and slow.step_time_s > fast.step_time_s


def test_energy_aware_sleep_follows_the_published_rule() -> None:
    sleep = EnergyAwareSleep()
    assert sleep.sleep_s(battery_pct=80, temperature_c=30) == 0.5  # 2 Hz
    assert sleep.sleep_s(battery_pct=15, temperature_c=30) == 2.0  # 0.5 Hz on low battery
    assert sleep.sleep_s(battery_pct=80, temperature_c=45) == 2.0  # 0.5 Hz when hot
    assert EnergyAwareSleep(low_hz=0.1).sleep_s(10, 50) == 5.0  # clamped to 5000 ms


def test_fedprox_adds_a_copy_and_elementwise_work() -> None:
    m = Method("lora", 8, 16.0, ("q_proj", "v_proj"))
    plain = build_workload(CATALOGUE["qwen2.5-0.5b"], m, TrainingSetup())
    prox = build_workload(CATALOGUE["qwen2.5-0.5b"], dataclasses.replace(m, fedprox_mu=0.01),
                          TrainingSetup())
    assert prox.memory.optimizer_state_bytes == plain.memory.optimizer_state_bytes + \
        4 * plain.trainable_params
    assert prox.elementwise_flops > plain.elementwise_flops
    assert prox.step_flops == plain.step_flops


def test_split_lora_runs_the_prefix_and_ships_activations() -> None:
    m = Method("lora", 8, 16.0, ("q_proj", "v_proj"))
    full = build_workload(CATALOGUE["qwen2.5-0.5b"], m, TrainingSetup(batch=2, seq=64))
    split = build_workload(CATALOGUE["qwen2.5-0.5b"], dataclasses.replace(m, split_layer=6),
                           TrainingSetup(batch=2, seq=64))
    assert split.trainable_params == full.trainable_params * 6 // 24
    assert split.step_upload_bytes == split.step_download_bytes == 2 * 64 * 896 * 4
    assert split.step_flops < full.step_flops / 3


def test_full_fine_tuning_peaks_in_the_update_with_two_adamw_temporaries() -> None:
    """torch's single-tensor AdamW forms sqrt(v) and then sqrt(v) / c: both alive at once."""
    w = build_workload(CATALOGUE["gpt2"], Method("full"), TrainingSetup(batch=1, seq=32))
    m = w.memory
    largest = 4 * max(math.prod(shape) for _, shape in w.trainable_tensors)
    assert m.peak_moment == "optimizer"
    assert m.peak_bytes == m.weights_bytes + m.gradients_bytes + m.optimizer_state_bytes \
        + 2 * largest
    assert largest == 50257 * 768 * 4  # the tied embedding table
    pages = [op for op in w.ops if op.name.endswith(".adamw.pages")]
    assert [(op.bytes, op.count) for op in pages] == [(float(largest), 2)]


def test_page_faults_cost_the_same_in_every_phase() -> None:
    """Calibration measures fresh pages once (a forward-phase case); the page faults of a
    gradient or an AdamW temporary cost the same, not a generic elementwise op's price."""
    from edgetwin.profiles.costmodel import op_times_s
    from edgetwin.profiles.device import OpCost

    pages = OpCost(flops_per_s=1e15, bytes_per_s=2.5e9)
    profile = dataclasses.replace(PHONE, compute={
        **PHONE.compute, "elementwise.fresh_pages.forward": pages})
    w = build_workload(CATALOGUE["gpt2"], Method("full"), TrainingSetup(batch=1, seq=32))
    fresh = [(op, t) for op, t in zip(w.ops, op_times_s(profile, w), strict=True)
             if op.impl == "fresh_pages"]
    assert {op.phase for op, _ in fresh} >= {"backward", "optimizer"}
    for op, t in fresh:
        assert t == pytest.approx(op.bytes / 2.5e9), op.name
