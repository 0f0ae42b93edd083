"""`edgetwin workload --json`: one shape for one device or many, RAM and margin per
device, and a sequence longer than the model accepts refused by its flag."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from edgetwin.cli import main
from edgetwin.profiles.costmodel import MIB
from edgetwin.profiles.device import load_profile, shipped_profiles
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import CATALOGUE, load_model
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload

GEMMA_LORA = ["--model", "gemma-3-270m", "--method", "lora", "--lora-rank", "8",
              "--lora-alpha", "32", "--lora-targets", "q_proj,k_proj,v_proj,o_proj",
              "--batch", "8", "--seq", "64"]
WORKLOAD_KEYS = {"model", "method", "setup", "total_params", "trainable_params", "step_flops",
                 "elementwise_flops", "upload_bytes", "download_bytes", "step_upload_bytes",
                 "step_download_bytes", "peak_memory_bytes", "memory", "op_count", "devices"}
DEVICE_KEYS = {"device", "step_time_s", "step_energy_j", "fits_in_memory", "usable_ram_mb",
               "memory_margin_mb", "device_peak_memory_bytes", "rss_between_steps_bytes",
               "compute_time_s", "storage_time_s", "communication_time_s", "sleep_s",
               "time_by_kind_s"}


def workload_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["workload", *args, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_no_device_one_device_and_all_have_one_shape(
        capsys: pytest.CaptureFixture[str]) -> None:
    none = workload_json(capsys, *GEMMA_LORA)
    one = workload_json(capsys, *GEMMA_LORA, "--device", "jetson-nano-4gb")
    every = workload_json(capsys, *GEMMA_LORA, "--device", "all")
    for data in (none, one, every):
        assert set(data) == WORKLOAD_KEYS
        assert all(set(d) == DEVICE_KEYS for d in data["devices"])
    assert none["devices"] == []
    assert [d["device"] for d in one["devices"]] == ["jetson-nano-4gb"]
    assert [d["device"] for d in every["devices"]] == sorted(shipped_profiles())
    # the workload's own figures do not depend on the devices asked for
    assert {k: v for k, v in one.items() if k != "devices"} == \
        {k: v for k, v in none.items() if k != "devices"}
    assert one["devices"][0] == next(d for d in every["devices"]
                                     if d["device"] == "jetson-nano-4gb")


def test_usable_ram_and_margin_are_the_profiles_and_decide_the_fit(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Batch 8 does not fit the Jetson Nano (EdgeFlowerTune ran it at 1 x accumulation 8);
    the phone has room to spare."""
    data = workload_json(capsys, *GEMMA_LORA, "--device", "jetson-nano-4gb,hi-nova-9-pro")
    nano, phone = data["devices"]
    for d in (nano, phone):
        usable = load_profile(d["device"]).memory.usable_ram_mb
        assert d["usable_ram_mb"] == usable
        assert d["memory_margin_mb"] == pytest.approx(
            usable - d["device_peak_memory_bytes"] / MIB)
        assert d["fits_in_memory"] is (d["memory_margin_mb"] >= 0)
    assert nano["fits_in_memory"] is False and nano["memory_margin_mb"] < 0
    assert phone["fits_in_memory"] is True and phone["memory_margin_mb"] > 0


def test_a_sequence_beyond_the_context_length_is_refused_naming_the_flag(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workload", "--model", "gpt2", "--batch", "1", "--seq", "4096"]) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert out.out == "" and len(lines) == 1
    assert "--seq" in lines[0] and "4096" in lines[0] and "1024" in lines[0]
    assert workload_json(capsys, "--model", "gpt2", "--batch", "1", "--seq", "1024")[
        "setup"]["seq"] == 1024  # the limit itself is accepted


def test_context_length_is_known_for_the_catalogue_and_read_from_config_json(
        tmp_path: Any) -> None:
    assert {n: m.context_length for n, m in CATALOGUE.items()} == {
        "gpt2": 1024, "gpt2-medium": 1024, "gemma-3-270m": 32768, "gemma-3-1b": 32768,
        "qwen2.5-0.5b": 32768}
    cfg = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "vocab_size": 1000}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    assert load_model(str(path)).context_length == 0  # unknown: not checked
    path.write_text(json.dumps({**cfg, "max_position_embeddings": 2048}))
    assert load_model(str(path)).context_length == 2048


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_context_length_counts_nothing(name: str) -> None:
    """Parameters, FLOPs, memory and bytes are the same whatever the context length."""
    arch = CATALOGUE[name]
    method, setup = Method("lora", lora_targets=("c_attn",) if arch.family == "gpt2" else
                           ("q_proj", "v_proj")), TrainingSetup(batch=2, seq=64)
    a = build_workload(arch, method, setup)
    b = build_workload(dataclasses.replace(arch, context_length=0), method, setup)
    assert (a.total_params, a.trainable_params, a.step_flops, a.elementwise_flops,
            a.memory, a.payload, len(a.ops)) == (
        b.total_params, b.trainable_params, b.step_flops, b.elementwise_flops, b.memory,
        b.payload, len(b.ops))
