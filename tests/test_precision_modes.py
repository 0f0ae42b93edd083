"""Mixed precision and operating modes: products under autocast run at the profile's
rate for their precision (tensor cores on the Orins, fp16 on the Jetson Nano's CUDA
cores, nothing for bf16 there), their casts and fp32 master weights are counted, and a
profile's named modes scale its clocks, bandwidth and power."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgetwin.emulator.session import COMPLETED
from edgetwin.profiles.costmodel import op_times_s, predict_step
from edgetwin.profiles.device import load_profile
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import load_model
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import Workload, build_workload
from tests.cli_runs import edgetwin

from .emulator_helpers import run, small_scenario

ROOT = Path(__file__).resolve().parents[1]
GEMMA = load_model("gemma-3-270m")
LORA = Method(kind="lora", lora_targets=("q_proj", "k_proj", "v_proj", "o_proj"))


def _workload(**setup: object) -> Workload:
    return build_workload(GEMMA, LORA, TrainingSetup(batch=4, seq=128, **setup))  # type: ignore[arg-type]


def _largest_product_s(device: str, w: Workload) -> float:
    """The time of the step's largest matmul past its launch (compute-bound: its rate
    decides it)."""
    profile = load_profile(device)
    times = op_times_s(profile, w)
    i = max((j for j, op in enumerate(w.ops) if op.kind == "matmul"),
            key=lambda j: w.ops[j].flops)
    op = w.ops[i]
    return times[i] - profile.op_cost(op.kind, op.phase, op.impl).overhead_s * op.kernels


@pytest.mark.parametrize(("device", "precision", "gain"), [
    ("jetson-orin-nano-8gb", "bf16", 3.6e12 / 4.5e11),  # tensor cores: 8x
    ("jetson-orin-nano-8gb", "fp16", 3.6e12 / 4.5e11),
    ("jetson-agx-orin-64gb", "bf16", 1.06e13 / 1.3e12),
    ("jetson-nano-4gb", "fp16", 2.0),  # Maxwell: fp16 on the CUDA cores at twice fp32
    ("jetson-nano-4gb", "bf16", 1.0),  # no bf16 rate of its own
])
def test_autocast_runs_products_at_the_precisions_rate(device: str, precision: str,
                                                       gain: float) -> None:
    fp32, amp = _workload(), _workload(autocast=precision)
    assert _largest_product_s(device, fp32) / _largest_product_s(device, amp) == \
        pytest.approx(gain, rel=1e-6)
    kinds = {op.kind: op.dtype for op in amp.ops if op.kind in ("matmul", "norm", "optimizer")}
    assert kinds == {"matmul": precision, "norm": "fp32", "optimizer": "fp32"}
    profile = load_profile(device)
    step32, step_amp = predict_step(profile, fp32), predict_step(profile, amp)
    if gain > 1:
        assert step_amp.step_time_s < step32.step_time_s
    else:  # the casts cost time and nothing runs faster
        assert step_amp.step_time_s > step32.step_time_s


def test_autocast_counts_its_casts_and_keeps_fp32_master_weights() -> None:
    fp32, amp = _workload(), _workload(autocast="bf16")
    casts = [op for op in amp.ops if op.impl == "cast"]
    assert casts and not [op for op in fp32.ops if op.impl == "cast"]
    # every projection casts its weight each micro-batch: 4 bytes read, 2 written
    weight_casts = sum(op.bytes for op in casts if op.name.endswith(".cast_weight"))
    lm_head = GEMMA.vocab * GEMMA.hidden
    assert weight_casts >= 6 * lm_head
    assert amp.memory.optimizer_state_bytes == fp32.memory.optimizer_state_bytes  # fp32 Adam
    assert amp.memory.weights_bytes == fp32.memory.weights_bytes  # fp32 master weights
    assert amp.memory.peak_bytes > fp32.memory.peak_bytes  # the casts kept for backward
    assert amp.payload.upload_bytes == fp32.payload.upload_bytes  # fp32 adapters travel


def test_autocast_needs_fp32_weights() -> None:
    done = edgetwin("workload", "--model", "gpt2", "--batch", "1", "--seq", "8", "--dtype",
                    "fp16", "--autocast", "bf16", cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip() == ("edgetwin: error: --autocast: keeps fp32 master "
                                   "weights: it needs dtype fp32, got fp16")


def test_a_mode_scales_clocks_bandwidth_and_power() -> None:
    base, super_ = load_profile("jetson-orin-nano-8gb"), load_profile("jetson-orin-nano-8gb@super")
    assert super_.name == "jetson-orin-nano-8gb@super" and super_.mode == "super"
    assert base.mode == "15w" and set(base.modes) == {"15w", "super"}
    mm, mm_s = base.compute["matmul"], super_.compute["matmul"]
    assert mm_s.flops_per_s == pytest.approx(mm.flops_per_s * 1.632)
    assert mm_s.rate("bf16") == pytest.approx(mm.rate("bf16") * 1.632)
    assert mm_s.bytes_per_s == pytest.approx(mm.bytes_per_s * 1.5)
    assert mm_s.busy_power_w == pytest.approx(mm.busy_power_w * 1.6)
    assert load_profile("jetson-orin-nano-8gb@15w").compute == base.compute
    w = _workload()
    a, b = predict_step(base, w), predict_step(super_, w)
    assert b.step_time_s < a.step_time_s and \
        b.step_energy_j / b.step_time_s > a.step_energy_j / a.step_time_s


def test_a_scenario_group_in_super_mode_runs_faster_and_draws_more_power() -> None:
    def sessions(profile: str) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
        data = small_scenario(workload={"model": "gpt2", "lora_targets": ["c_attn"]},
                              availability={"mean_session_s": None, "online_fraction": 1.0},
                              orchestration={"clients_per_round": 8, "deadline_s": 10_000},
                              battery={"initial_pct": 100}, stop={"rounds": 2})
        for g in data["fleet"]["groups"]:
            g["profile"] = profile
        return run(data).sessions

    slow, fast = sessions("jetson-orin-nano-8gb"), sessions("jetson-orin-nano-8gb@super")
    done_slow, done_fast = slow["status"] == COMPLETED, fast["status"] == COMPLETED
    assert done_slow.any() and done_fast.any()
    assert fast["compute_s"][done_fast].mean() < slow["compute_s"][done_slow].mean()
    power = lambda s, m: (s["energy_j"][m] / s["compute_s"][m]).mean()  # noqa: E731
    assert power(fast, done_fast) > power(slow, done_slow)


def test_unknown_mode_is_one_line_and_profiles_show_lists_the_modes() -> None:
    bad = edgetwin("workload", "--model", "gpt2", "--batch", "1", "--seq", "8", "--device",
                   "jetson-orin-nano-8gb@turbo", cwd=ROOT)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("edgetwin: error: --device: jetson-orin-nano-8gb@turbo: "
                                  "unknown operating mode (the profile's modes: 15w, super)")
    shown = edgetwin("profiles", "show", "jetson-agx-orin-64gb", cwd=ROOT)
    assert "mode: maxn" in shown.stdout and "  15w:" in shown.stdout
    listed = edgetwin("profiles", "list", cwd=ROOT)
    assert "15w (default), super" in listed.stdout


def test_calibration_records_a_jetsons_power_mode(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`nvpmodel -q` as JetPack 6 prints it (a stand-in script: no Jetson here)."""
    from edgetwin.calibration.host import power_mode

    monkeypatch.setenv("PATH", str(tmp_path))
    assert power_mode() == ""  # no nvpmodel: not a Jetson
    tool = tmp_path / "nvpmodel"
    tool.write_text("#!/bin/sh\necho 'NV Power Mode: MAXN_SUPER'\necho 2\n")
    tool.chmod(0o755)
    assert power_mode() == "MAXN_SUPER"
