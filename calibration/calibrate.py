"""`edgetwin calibrate --device local`: measure the op suite, fit, write a profile.

Every measurement is appended to the trace as soon as it is taken, so an
interrupted calibration loses nothing and `--resume` carries on from the trace.
"""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from calibration import host
from calibration.fit import GroupFit, fit_groups, residuals
from calibration.meters.procmem import process_memory, reset_peak
from calibration.opsuite import Case, base_cases, build_runner, neighbours, time_runner
from calibration.power import PowerReading
from calibration.trace import Measurement, TraceWriter, read_trace
from profiles.device import DeviceProfile, parse_profile
from profiles.errors import InputError
from profiles.ops import COMPUTE_KINDS, CONTRACTION_KINDS
from profiles.schema import to_mapping

Progress = Callable[[int, int, str], None]
# No power meter: whole-machine power from an assumed model, and the profile says so.
IDLE_W, PER_THREAD_W = 10.0, 6.0


@dataclass(frozen=True)
class Plan:
    quick: bool
    min_time_s: float
    max_reps: int
    refine_rounds: int
    refine_per_round: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        return cls(quick, 0.05, 30, 1, 12) if quick else cls(False, 0.25, 200, 3, 40)


def measure(case: Case, device: str, plan: Plan, facts: dict[str, Any]) -> Measurement:
    import torch

    run = build_runner(case, device)
    reset_peak()
    before = process_memory()["VmRSS"]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    latency = time_runner(run, device, plan.min_time_s, plan.max_reps)
    peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
            else max(process_memory().get("VmHWM", 0) - before, 0))
    del run
    return Measurement(case=case.id, op=case.op, phase=case.phase, shape=case.shape,
                       dtype="fp32", flops=case.flops, bytes=case.bytes, kernels=case.kernels,
                       latency_s=latency, device=facts, source="torch",
                       peak_memory_bytes=int(peak))


def run_calibration(*, device: str, trace_path: Path, quick: bool, resume: bool,
                    threads: int | None, progress: Progress | None = None
                    ) -> list[Measurement]:
    """Measure the suite into `trace_path` (resuming it if asked) and refine adaptively."""
    import torch

    if trace_path.exists() and trace_path.stat().st_size and not resume:
        raise InputError(str(trace_path), "", "already holds measurements: pass --resume to "
                         "continue it, or choose another --trace")
    if threads:
        torch.set_num_threads(threads)
    plan = Plan.make(quick)
    facts = host.facts(device, torch.get_num_threads())
    done = read_trace(trace_path) if trace_path.exists() else []
    have = {m.case for m in done}
    # a GPU's caching allocator reuses its memory: no fresh pages to fault in
    todo = [c for c in base_cases(np.random.default_rng(0), quick) if c.id not in have
            and not (device.startswith("cuda") and c.impl == "fresh_pages")]
    writer = TraceWriter(trace_path)
    try:
        total = len(todo) + plan.refine_rounds * plan.refine_per_round
        count = 0
        for case in todo:
            m = measure(case, device, plan, facts)
            writer.write(m)
            done.append(m)
            count += 1
            if progress:
                progress(count, total, case.id)
        for _ in range(plan.refine_rounds):
            fits = fit_groups(done, {})
            worst = [m for _, m in residuals(fits, done)][: max(1, plan.refine_per_round // 4)]
            extra: list[Case] = []
            for m in worst:
                case = _case_of(m)
                seed = int(hashlib.sha256(m.case.encode()).hexdigest()[:8], 16)
                extra += [c for c in neighbours(case, np.random.default_rng(seed), 4)
                          if c.id not in have]
            for case in extra[: plan.refine_per_round]:
                if case.id in have:
                    continue
                m = measure(case, device, plan, facts)
                writer.write(m)
                done.append(m)
                have.add(case.id)
                count += 1
                if progress:
                    progress(count, total, case.id)
    finally:
        writer.close()
    return done


def _case_of(m: Measurement) -> Case:
    impl = m.case.split("/")[1]
    return Case(m.op, impl, m.phase, m.shape, m.flops, m.bytes, m.kernels)


def build_profile(name: str, measurements: list[Measurement], trace_path: Path, *,
                  quick: bool, measure_host: bool = True, in_situ: bool = True,
                  progress: Progress | None = None) -> DeviceProfile:
    """A device profile from measurements, every number with its provenance."""
    facts = measurements[0].device if measurements else {}
    threads = int(facts.get("threads", 1) or 1)
    gpu = str(facts.get("device", "cpu")).startswith("cuda")
    power = _measured_power() if gpu and measure_host else None
    today = time.strftime("%Y-%m-%d")
    source = f"edgetwin calibrate{' --quick' if quick else ''}: {trace_path.name}, " \
             f"{len(measurements)} measurements ({facts.get('cpu') or facts.get('device')})"
    compute, provenance = _compute_section(measurements, threads, power, source, today)
    host_sections, host_provenance = _host_sections(gpu, measure_host, quick, power, today)
    data: dict[str, Any] = {
        "schema_version": 1, "name": name,
        "description": f"calibrated here: {facts.get('cpu') or facts.get('device')}, "
                       f"{threads} threads, PyTorch {facts.get('torch', '?')}",
        "device_class": ("laptop" if host.has_battery() else "server") if measure_host
        else "phone",
        "identity": {k: str(v) for k, v in facts.items()},
        "launch": "queued" if gpu else "synchronous",
        "compute": compute,
        **host_sections,
        "provenance": {**provenance, **host_provenance},
    }
    if measure_host and not gpu:
        _measure_heap_retention(data, quick=quick, today=today, progress=progress)
    profile = parse_profile(data, f"calibration of {name}")
    if not in_situ:
        return profile
    return _correct_in_situ(data, profile, quick=quick, gpu=gpu, progress=progress)


def _compute_section(measurements: list[Measurement], threads: int,
                     power: PowerReading | None, source: str, today: str
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-op costs fitted from the measurements, with their provenance."""
    busy_w = IDLE_W + PER_THREAD_W * threads
    fits = fit_groups(measurements, {
        k: busy_w if power is None else
        (power.contraction_w if k in CONTRACTION_KINDS else power.other_w)
        for k in COMPUTE_KINDS})
    compute = {key: to_mapping(f.cost) for key, f in fits.items()}
    if "elementwise" in fits:
        compute["default"] = to_mapping(fits["elementwise"].cost)
    provenance: dict[str, Any] = {
        f"compute.{key}": {"kind": "calibrated", "source": source, "date": today,
                           "note": "fit on four fifths of the shapes; fit_error is on the "
                                   "held-out fifth",
                           "fit_error": f.score.as_dict()}
        for key, f in fits.items()}
    provenance["compute.default"] = {"kind": "calibrated", "source": source, "date": today,
                                     "note": "the elementwise fit"}
    provenance["compute"] = {
        "kind": "assumed", "source": "no power meter on this machine", "date": today,
        "note": f"busy_power_w from a power model: {IDLE_W:g} W idle + {PER_THREAD_W:g} W "
                f"per busy thread ({threads})"} if power is None else {
        "kind": "calibrated", "source": "NVML total-energy counter", "date": today,
        "note": f"busy_power_w of contractions from a sustained 4096^2 matrix product "
                f"({power.contraction_w:.0f} W), of other ops from a sustained elementwise "
                f"multiply ({power.other_w:.0f} W); idle {power.idle_w:.0f} W"}
    return compute, provenance


def _host_sections(gpu: bool, measure_host: bool, quick: bool, power: PowerReading | None,
                   today: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Memory, storage, network, power and thermal sections, with their provenance."""
    def entry(kind: str, source: str) -> dict[str, str]:
        return {"kind": kind, "source": source, "date": today}

    not_measured = entry("assumed", "not measured: fitted from a trace alone; set the "
                         "device's value here")
    if gpu and measure_host:
        total_mb, avail_mb = host.gpu_memory_mb()
        overhead_mb = host.gpu_runtime_overhead_mb()
        memory_from = entry("calibrated", "torch.cuda.mem_get_info at calibration; runtime = "
                            "device memory of a fresh CUDA context")
    elif measure_host:
        total_mb, avail_mb = host.memory_mb()
        overhead_mb = host.runtime_overhead_mb()
        memory_from = entry("calibrated", "/proc/meminfo at calibration; runtime = RSS of a "
                            "fresh process importing torch, transformers, peft")
    else:
        total_mb, avail_mb, overhead_mb = 16384.0, 12000.0, 400.0
        memory_from = not_measured
    write, read = host.storage_mb_per_s(32 if quick else 256) if measure_host else (500, 1000)
    idle_w = IDLE_W if power is None else round(power.idle_w, 1)
    sections = {
        "memory": {"ram_mb": round(total_mb, 1), "usable_ram_mb": round(0.9 * avail_mb, 1),
                   "runtime_overhead_mb": round(overhead_mb, 1), "tensors_in_rss": not gpu},
        "storage": {"read_mb_per_s": round(read, 1), "write_mb_per_s": round(write, 1)},
        "network": {"downlink_mbps": 1000.0, "uplink_mbps": 1000.0, "rtt_ms": 1.0},
        "power": {"idle_w": idle_w, "io_w": idle_w + 2.0},
        "thermal": {"ambient_c": 25.0, "resistance_c_per_w": 0.5, "time_constant_s": 300.0,
                    "throttle_start_c": 95.0, "throttle_full_c": 105.0,
                    "min_speed_factor": 0.8},
    }
    provenance = {
        "memory": memory_from,
        "storage": entry("calibrated", "sequential write with fsync, read with the page "
                         "cache dropped") if measure_host else not_measured,
        "network": entry("assumed", "LAN defaults; not measured"),
        "power": entry("assumed", "power model, no meter") if power is None else
        entry("calibrated", "NVML total-energy counter, idle between calibration loads"),
        "thermal": entry("assumed", "a cooled host that does not throttle"),
    }
    return sections, provenance


def _measure_heap_retention(data: dict[str, Any], *, quick: bool, today: str,
                            progress: Progress | None) -> None:
    """How much freed memory this host's allocator keeps resident in a training step."""
    from calibration.allocator import fit_heap_retention, retention_probes

    plan = retention_probes(quick)
    if progress:
        progress(0, len(plan), "heap retention of probe steps")
    fit = fit_heap_retention(plan)
    if progress:
        progress(len(plan), len(plan), "heap retention of probe steps")
    data["memory"]["heap_retention"] = fit.retention
    data["provenance"]["memory.heap_retention"] = {
        "kind": "calibrated", "source": "VmHWM of fresh processes (calibration.allocator)",
        "date": today, "note": fit.note()}


def _correct_in_situ(data: dict[str, Any], profile: DeviceProfile, *, quick: bool, gpu: bool,
                     progress: Progress | None) -> DeviceProfile:
    """Time the probe models' steps and fold the in-situ correction into every op cost."""
    from calibration.insitu import apply_in_situ, fit_in_situ, probes
    from calibration.steps import time_training_step_s

    plan = probes(quick)
    # the full run times every probe twice, one pass after the other, so a slow spell
    # of a shared machine moves one of the two measurements, not the fit
    passes = 1 if quick else 2
    runs: list[list[float]] = [[] for _ in plan]
    for n in range(passes):
        for i, p in enumerate(plan):
            runs[i].append(time_training_step_s(p.arch, p.method, p.batch, p.seq,
                                                steps=3 if quick else 5, seed=1,
                                                device="cuda" if gpu else "cpu"))
            if progress:
                progress(n * len(plan) + i + 1, passes * len(plan),
                         f"probe step {p.arch.name} {p.method.kind}")
    timed = [(p, statistics.median(r)) for p, r in zip(plan, runs, strict=True)]
    fix = fit_in_situ(profile, timed)
    data["compute"] = to_mapping(apply_in_situ(profile, fix))["compute"]
    how = (f"x{fix.overhead_factor:.3f} on every launch overhead and x{fix.factor:.3f} on "
           f"device time (a step costs the larger of its launch and device times)" if gpu else
           f"x{fix.factor:.3f} for contractions, x{fix.other_factor:.3f} for other ops and "
           f"{fix.overhead_s * 1e6:.2f} us a kernel launch")
    each = f"{passes} fresh processes" if passes > 1 else "a fresh process"
    note = (f"op costs from the micro-benchmarks, then {how}, fitted to {len(timed)} whole "
            f"training steps of probe models, each timed in {each} (step error "
            f"{fix.mape_pct:.1f} % on them): "
            + "; ".join(f"{lbl} {m:.4f} s" for lbl, m, _ in fix.probes))
    for key in list(data["provenance"]):
        if key.startswith("compute."):
            data["provenance"][key]["note"] = note
    return parse_profile(data, f"calibration of {profile.name}")


def _measured_power() -> PowerReading | None:
    from calibration.meters.nvml import NvmlEnergy
    from calibration.power import measure_gpu_power

    meter = NvmlEnergy.find()
    if meter is None:
        return None
    try:
        return measure_gpu_power(meter)
    except Exception:  # a driver without the energy counter: the power model instead
        return None


def write_profile(profile: DeviceProfile, path: Path, fits_note: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Device profile written by edgetwin calibrate. {fits_note}\n"
    path.write_text(header + yaml.safe_dump(to_mapping(profile), sort_keys=False, width=100))


def fit_summary(measurements: list[Measurement]) -> dict[str, GroupFit]:
    return fit_groups(measurements, {})


def replace_name(profile: DeviceProfile, name: str) -> DeviceProfile:
    return dataclasses.replace(profile, name=name)
