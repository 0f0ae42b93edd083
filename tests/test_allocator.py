"""Heap retention: measured on real training processes, priced by the cost model."""

from __future__ import annotations

import dataclasses

import pytest

from edgetwin.calibration.allocator import StepMemory, heap_retention, measure_step_memory
from edgetwin.profiles.costmodel import MIB, predict_step
from edgetwin.profiles.device import load_profile
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import CATALOGUE, ModelArch
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload

TINY = ModelArch("tiny-llama", "llama", 128, 2, 4, 2, 32, 256, 4000, False, "silu")


def test_freed_memory_is_activations_plus_gradients() -> None:
    setup = TrainingSetup(batch=2, seq=64)
    lora = build_workload(CATALOGUE["gpt2"], Method("lora", 8, 16.0, ("c_attn",)), setup)
    full = build_workload(CATALOGUE["gpt2"], Method("full"), setup)
    assert lora.memory.peak_moment == "backward"
    assert lora.memory.freed_each_step_bytes == \
        lora.memory.activations_bytes + lora.trainable_params * 4
    # full fine-tuning saves every projection's input too, and frees every gradient
    assert full.memory.freed_each_step_bytes > \
        lora.memory.activations_bytes + full.trainable_params * 4


def test_retained_heap_adds_to_peak_and_between_steps() -> None:
    w = build_workload(CATALOGUE["gpt2"], Method("full"), TrainingSetup(batch=2, seq=64))
    base = load_profile("laptop-x86-8core")
    none = dataclasses.replace(base, memory=dataclasses.replace(base.memory,
                                                                heap_retention=0.0))
    kept = predict_step(base, w)
    returned = predict_step(none, w)
    extra = int(base.memory.heap_retention * w.memory.freed_each_step_bytes)
    assert extra > 0
    assert kept.peak_memory_bytes - returned.peak_memory_bytes == extra
    assert kept.rss_between_steps_bytes - returned.rss_between_steps_bytes == extra
    # tensors outside the process's RSS (a GPU) leave no holes in it
    gpu = dataclasses.replace(base, memory=dataclasses.replace(base.memory,
                                                               tensors_in_rss=False))
    assert predict_step(gpu, w).peak_memory_bytes == returned.peak_memory_bytes


def test_retention_share_is_what_lies_beyond_the_predicted_peak() -> None:
    w = build_workload(TINY, Method("full"), TrainingSetup(batch=2, seq=32))
    freed = w.memory.freed_each_step_bytes
    base = 300 * MIB
    exact = StepMemory(base, base + w.memory.peak_bytes + freed // 2)
    assert heap_retention(w, exact) == pytest.approx(0.5, rel=1e-3)
    below = StepMemory(base, base + w.memory.peak_bytes // 2)  # the model over-predicted
    assert heap_retention(w, below) == 0.0


def test_a_real_step_holds_at_least_weights_gradients_and_adam_state() -> None:
    w = build_workload(TINY, Method("full"), TrainingSetup(batch=2, seq=32))
    got = measure_step_memory(TINY, Method("full"), 2, 32, steps=2)
    held = got.high_water_bytes - got.baseline_bytes
    assert got.baseline_bytes > 50 * MIB  # torch and transformers are loaded
    assert held >= 4 * w.total_params * 4  # weights, gradients, two AdamW moments (fp32)
    assert held < 20 * w.memory.peak_bytes + 64 * MIB  # and it is this model's step
