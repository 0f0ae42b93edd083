"""Calibration: the trace format, fitting, the native benchmark, importers, resume."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgetwin.calibration.fit import fit_groups
from edgetwin.calibration.importers import correct_profile, load_eft_metrics, load_mft_memory_csv
from edgetwin.calibration.meters.procmem import process_memory, reset_peak
from edgetwin.calibration.opsuite import fresh_pages_runner, matmul_case, norm_case
from edgetwin.calibration.trace import Latency, Measurement, parse_line, read_trace
from edgetwin.common.errors import InputError
from edgetwin.profiles.costmodel import predict_step
from edgetwin.profiles.device import OpCost, load_profile
from tests.cli_runs import edgetwin

ROOT = Path(__file__).resolve().parents[1]


def _m(case_id: str, op: str, phase: str, shape: tuple[int, ...], flops: float, nbytes: float,
       t: float, kernels: int = 1) -> Measurement:
    return Measurement(case_id, op, phase, shape, "fp32", flops, nbytes,
                       Latency(t, t, t, t, 0.0, 5), kernels)


def test_fresh_pages_are_faulted_in_and_given_back_each_time() -> None:
    """The page-fault case touches every page of new memory and returns it, whatever
    the process's heap holds, as a step's large tensors do under glibc's defaults."""
    pytest.importorskip("torch")
    nbytes = 64 * 1024 * 1024
    run = fresh_pages_runner(nbytes)
    run()  # first use: torch's lazy set-up allocates a little of its own
    for _ in range(2):
        if not reset_peak():
            pytest.skip("this kernel does not let a process reset its VmHWM")
        before = process_memory()["VmRSS"]
        run()
        after = process_memory()
        assert after["VmHWM"] - before >= 0.95 * nbytes
        assert after["VmRSS"] - before < 0.25 * nbytes  # given back, bar other threads' bits


def test_trace_lines_round_trip_and_bad_lines_are_named(tmp_path: Path) -> None:
    m = _m("matmul/mm/forward/2x3x4", "matmul", "forward", (2, 3, 4), 48.0, 104.0, 1e-6)
    assert parse_line(m.to_json(), "t", 1) == m
    path = tmp_path / "t.jsonl"
    path.write_text(m.to_json() + "\n" + '{"format": "edgetwin-trace", "version": 2}\n')
    with pytest.raises(InputError, match="line 2: version 2 is not 1"):
        read_trace(path)
    path.write_text(m.to_json() + "\nnot json\n")
    with pytest.raises(InputError, match="line 2: not JSON"):
        read_trace(path)
    bad = json.loads(m.to_json())
    del bad["latency_s"]
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(InputError, match="line 1: missing 'latency_s'"):
        read_trace(path)


def test_fit_recovers_a_known_roofline() -> None:
    """Synthetic matmul and norm timings from known costs: the fit finds them again."""
    truth = OpCost(flops_per_s=2e11, bytes_per_s=2e10, overhead_s=5e-6, m_half=16.0,
                   k_half=8.0, n_half=4.0)
    norm_truth = OpCost(flops_per_s=1e12, bytes_per_s=1e10, overhead_s=2e-6)
    rng = np.random.default_rng(3)
    ms = []
    for _ in range(80):
        m, k, n = (int(x) for x in np.exp(rng.uniform(np.log(4), np.log(4096), 3)))
        c = matmul_case(m, k, n)
        ms.append(_m(c.id, "matmul", "forward", c.shape, c.flops, c.bytes,
                     truth.latency_s(c.flops, c.bytes, (m, k, n))))
    for _ in range(40):
        rows, width = (int(x) for x in np.exp(rng.uniform(np.log(8), np.log(4096), 2)))
        c = norm_case("rmsnorm", rows, width, "forward")
        ms.append(_m(c.id, "norm", "forward", c.shape, c.flops, c.bytes,
                     norm_truth.latency_s(c.flops, c.bytes, None, c.kernels), c.kernels))
    fits = fit_groups(ms, {})
    assert fits["matmul"].score.mape_pct < 1.0 and fits["matmul"].score.n_test > 5
    assert fits["matmul"].cost.flops_per_s == pytest.approx(2e11, rel=0.05)
    assert fits["norm.rmsnorm.forward"].score.mape_pct < 1.0


@pytest.fixture(scope="module")
def native_trace(native_runner: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    trace = tmp_path_factory.mktemp("native-trace") / "trace.jsonl"
    subprocess.run([str(native_runner), "--quick", "--out", str(trace)], check=True,
                   timeout=300)
    return trace


def test_native_benchmark_writes_the_trace_format(native_trace: Path) -> None:
    ms = read_trace(native_trace)
    assert {m.op for m in ms} >= {"matmul", "elementwise", "activation", "norm",
                                  "cross_entropy", "optimizer"}
    for m in ms:  # the C++ side counts as the Python side does
        if m.op == "matmul":
            assert m.flops == matmul_case(*m.shape).flops
            assert m.bytes == matmul_case(*m.shape).bytes
        if m.op == "norm":
            assert m.bytes == norm_case("rmsnorm", *m.shape, "forward").bytes


def test_native_traces_calibrate_a_profile_that_prices_workloads(native_trace: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "phone.yaml"
    done = edgetwin("calibrate", "--from-trace", str(native_trace), "--name", "phone-native",
                    "--out", str(out))
    assert done.returncode == 0, done.stderr
    check = edgetwin("profiles", "validate", str(out))
    assert check.returncode == 0, check.stderr
    work = edgetwin("workload", "--model", "gpt2", "--batch", "1", "--seq", "32", "--device",
                    str(out), "--json")
    assert json.loads(work.stdout)["devices"][0]["step_time_s"] > 0


EFT = [{"client": f"nova-{i}", "model": "gemma-3-270m", "method": "lora", "lora_rank": 8,
        "lora_alpha": 32, "lora_targets": "q_proj,k_proj,v_proj,o_proj", "batch": 8, "seq": 64,
        "grad_accum": 1, "serialization": "npy", "train_time_sec": 1720.0 + i,
        "mean_step_time_sec": 172.0 + i / 10,
        "step_times_sec_json": json.dumps([171.5 + i / 10, 172.5 + i / 10]),
        "avg_rss_mb": 1068.0, "client_hwm_mb": 1102.0, "upload_bytes": 2960640,
        "download_bytes": 2960640} for i in range(5)]


def test_edgeflowertune_metrics_correct_a_profile(tmp_path: Path) -> None:
    path = tmp_path / "clients.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in EFT) + "\n")
    runs = load_eft_metrics(path)
    slow = load_profile("flagship-phone-sd8gen3")  # wrong on purpose: 25x too fast
    fixed, fit = correct_profile(slow, runs, "test")
    assert fit["step_mape_pct"] < 1.0 and fit["upload_bytes_mismatches"] == 0
    assert predict_step(fixed, runs[0].workload).step_time_s == pytest.approx(172.2, rel=0.01)
    assert fixed.provenance["compute.matmul.flops_per_s"].kind == "imported"
    path.write_text(json.dumps(EFT[0]) + "\n" + '{"model": "gemma-3-270m"}\n')
    with pytest.raises(InputError, match="line 2"):
        load_eft_metrics(path)


def test_mobilefinetuner_memory_monitor_csv(tmp_path: Path) -> None:
    header = ("sample,t_ms,VmPeak_kB,VmSize_kB,VmHWM_kB,VmRSS_kB,RssAnon_kB,RssFile_kB,"
              "RssShmem_kB,VmData_kB,VmStk_kB,VmExe_kB,VmLib_kB,VmSwap_kB")
    rows = ["1,0.052,1200000,1180000,1090000,1085440,1070000,15000,0,1100000,136,2000,9000,0",
            "2,5.131,1200000,1180000,1100000,1101824,1080000,15000,0,1100000,136,2000,9000,0"]
    path = tmp_path / "mem.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    avg, peak = load_mft_memory_csv(path)
    assert avg == pytest.approx((1085440 + 1101824) / 2 / 1024)
    assert peak == pytest.approx(1101824 / 1024)
    path.write_text(header + "\n1,0.0,1,1,1,x,1,1,1,1,1,1,1,1\n")
    with pytest.raises(InputError, match="line 2"):
        load_mft_memory_csv(path)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_fits_stay_within_the_devices_physical_bounds() -> None:
    """An optimizer group timed only on cache-resident sizes would fit a bandwidth far
    beyond the device's and a launch of nothing; the suite's tiny and large adds bound
    both, and the fit says when it sits at a bound."""
    from edgetwin.calibration.bounds import physical_bounds
    from edgetwin.calibration.opsuite import elementwise_case, optimizer_case
    from edgetwin.calibration.profile_builder import _fit_note

    add = OpCost(flops_per_s=1e11, bytes_per_s=1e10, overhead_s=4e-6)
    fast = OpCost(flops_per_s=1e15, bytes_per_s=5e12, overhead_s=1e-12)  # what caches show
    ms = []
    for n in (1, 16, 256, 16_000_000, 1000, 100_000, 1_000_000):
        c = elementwise_case("add", n, "forward")
        ms.append(_m(c.id, "elementwise", "forward", c.shape, c.flops, c.bytes,
                     add.latency_s(c.flops, c.bytes, None, c.kernels), c.kernels))
    for params, tensors in ((20_000, 4), (40_000, 8), (60_000, 6), (90_000, 9), (120_000, 12)):
        c = optimizer_case("adamw", params, tensors)
        ms.append(_m(c.id, "optimizer", "optimizer", c.shape, c.flops, c.bytes,
                     fast.latency_s(c.flops, c.bytes, None, c.kernels), c.kernels))
    bounds = physical_bounds(ms)
    assert bounds.launch_s == pytest.approx(4e-6, rel=0.01)
    assert bounds.copy_bytes_per_s == pytest.approx(1e10, rel=0.01)
    fit = fit_groups(ms, {})["optimizer.adamw"]
    assert fit.cost.bytes_per_s <= 2e10 * 1.0001 and fit.cost.overhead_s >= 2e-6 * 0.9999
    assert set(fit.at_bound) >= {"bytes_per_s"}
    assert "bytes_per_s at its ceiling, 2 x a large copy's 10.0 GB/s" in _fit_note(fit, bounds)
    assert fit.score.n_test >= 1  # five shapes: one held out


def test_a_group_too_small_to_hold_out_says_so() -> None:
    from edgetwin.calibration.bounds import Bounds
    from edgetwin.calibration.opsuite import optimizer_case
    from edgetwin.calibration.profile_builder import _fit_note

    cost = OpCost(flops_per_s=1e11, bytes_per_s=1e10, overhead_s=4e-6)
    ms = []
    for params, tensors in ((20_000, 4), (40_000, 8), (60_000, 6)):
        c = optimizer_case("sgd", params, tensors)
        ms.append(_m(c.id, "optimizer", "optimizer", c.shape, c.flops, c.bytes,
                     cost.latency_s(c.flops, c.bytes, None, c.kernels), c.kernels))
    fit = fit_groups(ms, {})["optimizer.sgd"]
    assert fit.score.n_test == 0
    assert _fit_note(fit, Bounds(None, None)).startswith(
        "no held-out shapes: only 3 measured, all fitted on")


def test_products_timed_in_other_precisions_become_matmuls_rates() -> None:
    """A GPU's suite times products in tf32, fp16 and bf16 as well; each precision's rate
    lands in the profile as matmul's `precision_flops_per_s` (attention's follows)."""
    from edgetwin.calibration.opsuite import attention_case, precision_cases
    from edgetwin.calibration.profile_builder import _compute_section

    rates = {"fp32": 5e13, "tf32": 2e14, "fp16": 6e14, "bf16": 6e14}
    rng = np.random.default_rng(5)
    cases = [matmul_case(*(int(x) for x in np.exp(rng.uniform(np.log(128), np.log(4096), 3))))
             for _ in range(20)] + precision_cases(np.random.default_rng(1), quick=True)
    cases += [attention_case(2, 8, 256, 64, "forward") for _ in range(1)]
    ms = []
    for c in cases:
        precision = c.impl.removeprefix("mm_") if c.impl.startswith("mm_") else "fp32"
        cost = OpCost(flops_per_s=rates[precision], bytes_per_s=2e12, overhead_s=5e-6)
        mkn = (c.shape[0], c.shape[1], c.shape[2]) if c.op == "matmul" else None
        ms.append(_m(c.id, c.op, c.phase, c.shape, c.flops, c.bytes,
                     cost.latency_s(c.flops, c.bytes, mkn, c.kernels), c.kernels))
    compute, provenance = _compute_section(ms, 1, None, "test", "2026-11-26")
    got = compute["matmul"]["precision_flops_per_s"]
    assert set(got) == {"tf32", "fp16", "bf16"}
    for p in got:
        assert got[p] == pytest.approx(rates[p], rel=0.1)
    assert "matmul@bf16" not in compute
    assert "bf16" in provenance["compute.matmul.precision_flops_per_s"]["note"]
    attention = compute["attention.forward"]
    assert attention["precision_flops_per_s"]["bf16"] == pytest.approx(
        attention["flops_per_s"] * got["bf16"] / compute["matmul"]["flops_per_s"])



def test_a_calibration_logged_to_a_file_prints_progress_lines_with_the_time_left() -> None:
    """Where stderr is no terminal, a line every ten seconds (not one per measurement):
    how far, the case, the time so far and the time left at the rate so far."""
    from edgetwin.calibration.commands import ProgressLines

    class Printed:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def print(self, line: str, **_: object) -> None:
            self.lines.append(line)

    console, now = Printed(), [100.0]
    lines = ProgressLines(console)
    lines.clock = lambda: now[0]
    lines.t0 = lines.last = now[0]
    for done, t in ((1, 101.0), (10, 111.0), (11, 112.0), (20, 122.0)):
        now[0] = t
        lines.update(done, 40, f"case {done}")
    assert console.lines == [
        "calibrating: 10/40 (case 10), 11 s so far, about 33 s left",
        "calibrating: 20/40 (case 20), 22 s so far, about 22 s left"]
