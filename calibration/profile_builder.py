"""A device profile from a calibration's records, every number with its provenance.

Op costs are fitted from the op measurements. With a bench, what the trace does
not hold yet is measured on it and journaled: the host's memory, storage and
power, the allocator's heap retention on probe steps, and the probe steps that
the in-situ correction fits to. Without one (a trace from another program), the
host sections are marked as not measured.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgetwin.calibration.allocator import StepMemory, retention_from, retention_probes
from edgetwin.calibration.bench import Bench, HostFacts
from edgetwin.calibration.bounds import Bounds, physical_bounds
from edgetwin.calibration.fit import PRECISION_MARK, GroupFit, fit_groups
from edgetwin.calibration.insitu import apply_in_situ, fit_in_situ, probes
from edgetwin.calibration.power import PowerReading
from edgetwin.calibration.probe_models import Probe
from edgetwin.calibration.sessions import fit_sessions, steady_s
from edgetwin.calibration.steps import ProbeSession
from edgetwin.calibration.trace import Measurement, TraceRecords, TraceWriter
from edgetwin.profiles.device import DeviceProfile, parse_profile
from edgetwin.profiles.ops import COMPUTE_KINDS, CONTRACTION_KINDS
from edgetwin.profiles.schema import dump_yaml, to_mapping

Progress = Callable[[int, int, str], None]
# No power meter: whole-machine power from an assumed model, and the profile says so.
IDLE_W, PER_THREAD_W = 10.0, 6.0
# Calibration does not measure standby drain (idle, screen off, off the charger, between
# sessions): a screen-off, radio-idle phone's, about 1.2 Wh a day of a 15 Wh battery.
STANDBY_W = 0.05


def build_profile(name: str, records: TraceRecords, trace_path: Path, *, quick: bool,
                  bench: Bench | None = None, progress: Progress | None = None
                  ) -> DeviceProfile:
    """The profile of the device the records were measured on."""
    measurements = records.measurements
    facts = measurements[0].device if measurements else {}
    threads = int(facts.get("threads", 1) or 1)
    gpu = str(facts.get("device", "cpu")).startswith("cuda")
    today = time.strftime("%Y-%m-%d")
    origin = f" on {bench.origin}" if bench else ""
    source = f"edgetwin calibrate{' --quick' if quick else ''}{origin}: {trace_path.name}, " \
             f"{len(measurements)} measurements ({facts.get('cpu') or facts.get('device')})"
    writer = TraceWriter(trace_path) if bench else None
    try:
        host = _host(records, bench, quick, writer) if bench and writer else None
        power = host.power if host else None
        compute, provenance = _compute_section(measurements, threads, power, source, today)
        host_sections, host_provenance = _host_sections(gpu, host, today)
        where = "calibrated here" if bench is None or bench.origin.startswith("this host") \
            else f"calibrated{origin}"
        data: dict[str, Any] = {
            "schema_version": 1, "name": name,
            "description": f"{where}: {facts.get('cpu') or facts.get('device')}, "
                           f"{threads} threads, PyTorch {facts.get('torch', '?')}",
            "device_class": host.device_class if host else "phone",
            "identity": {k: str(v) for k, v in facts.items()},
            "mode": str(facts.get("mode", "")).lower(),  # nvpmodel's, on a Jetson
            "launch": "queued" if gpu else "synchronous",
            "compute": compute,
            **host_sections,
            "provenance": {**provenance, **host_provenance},
        }
        if bench is not None and writer is not None and bench.heap_retention_measurable:
            _heap_retention(data, records, bench, writer, quick=quick, today=today,
                            progress=progress)
        profile = parse_profile(data, f"calibration of {name}")
        if bench is None or writer is None:
            return profile
        return _correct_in_situ(data, profile, records, bench, writer, quick=quick, gpu=gpu,
                                progress=progress)
    finally:
        if writer:
            writer.close()


def _host(records: TraceRecords, bench: Bench, quick: bool, writer: TraceWriter
          ) -> HostFacts:
    """The host's facts from the trace, or measured on the bench and journaled."""
    if records.host is not None:
        d = dict(records.host)
        power = d.pop("power", None)
        return HostFacts(**d, power=PowerReading(**power) if power else None)
    host = bench.host(quick)
    writer.write_record("host", **dataclasses.asdict(host))
    return host


def _compute_section(measurements: list[Measurement], threads: int,
                     power: PowerReading | None, source: str, today: str
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-op costs fitted from the measurements, with their provenance."""
    busy_w = IDLE_W + PER_THREAD_W * threads
    fits = fit_groups(measurements, {
        k: busy_w if power is None else
        (power.contraction_w if k in CONTRACTION_KINDS else power.other_w)
        for k in COMPUTE_KINDS})
    bounds = physical_bounds(measurements)
    precisions = {k.split(PRECISION_MARK)[1]: f for k, f in fits.items() if PRECISION_MARK in k}
    fits = {k: f for k, f in fits.items() if PRECISION_MARK not in k}
    compute = {key: to_mapping(f.cost) for key, f in fits.items()}
    if "elementwise" in fits:
        compute["default"] = to_mapping(fits["elementwise"].cost)
    provenance: dict[str, Any] = {
        f"compute.{key}": {"kind": "calibrated", "source": source, "date": today,
                           "note": _fit_note(f, bounds), "fit_error": f.score.as_dict()}
        for key, f in fits.items()}
    provenance["compute.default"] = {"kind": "calibrated", "source": source, "date": today,
                                     "note": "the elementwise fit"}
    if precisions and "matmul" in fits:
        _fold_precisions(compute, provenance, fits, precisions, source, today)
    provenance["compute"] = {
        "kind": "assumed", "source": "no power meter on this machine", "date": today,
        "note": f"busy_power_w from a power model: {IDLE_W:g} W idle + {PER_THREAD_W:g} W "
                f"per busy thread ({threads})"} if power is None else {
        "kind": "calibrated", "source": "NVML total-energy counter", "date": today,
        "note": f"busy_power_w of contractions from a sustained 4096^2 matrix product "
                f"({power.contraction_w:.0f} W), of other ops from a sustained elementwise "
                f"multiply ({power.other_w:.0f} W); idle {power.idle_w:.0f} W"}
    return compute, provenance


def _fold_precisions(compute: dict[str, Any], provenance: dict[str, Any],
                     fits: dict[str, GroupFit], precisions: dict[str, GroupFit], source: str,
                     today: str) -> None:
    """Products timed in a GPU's other precisions become matmul's per-precision rates;
    attention's are its fp32 rate times matmul's gain in each (assumed)."""
    fp32 = fits["matmul"].cost.flops_per_s
    rates = {p: f.cost.flops_per_s for p, f in sorted(precisions.items())}
    compute["matmul"]["precision_flops_per_s"] = rates
    timed = ", ".join(f"{p} {r / 1e12:.2f} TFLOP/s ({r / fp32:.1f}x fp32, held-out error "
                      f"{precisions[p].score.mape_pct:.1f} %)" for p, r in rates.items())
    provenance["compute.matmul.precision_flops_per_s"] = {
        "kind": "calibrated", "source": source, "date": today,
        "note": f"products timed in each precision (tf32: torch's allow_tf32 on for them "
                f"only; the fp32 fit has it off, torch's default): {timed}"}
    for key in [k for k in compute if k.split(".")[0] == "attention"]:
        rate = fits[key].cost.flops_per_s if key in fits else fp32
        compute[key]["precision_flops_per_s"] = {p: rate * r / fp32 for p, r in rates.items()}
        provenance[f"compute.{key}.precision_flops_per_s"] = {
            "kind": "assumed", "source": "the matmul fits", "date": today,
            "note": "attention's fp32 rate times matmul's gain in each precision"}


def _fit_note(f: GroupFit, bounds: Bounds) -> str:
    s = f.score
    note = (f"no held-out shapes: only {s.n_train} measured, all fitted on; its error is "
            "not known") if not s.n_test else \
        f"fit on {s.n_train} shapes; fit_error is on {s.n_test} held out"
    for which in f.at_bound:
        note += f"; {bounds.describe(which)}"
    return note


def _host_sections(gpu: bool, host: HostFacts | None, today: str
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Memory, storage, network, power and thermal sections, with their provenance."""
    def entry(kind: str, source: str) -> dict[str, str]:
        return {"kind": kind, "source": source, "date": today}

    not_measured = entry("assumed", "not measured: fitted from a trace alone; set the "
                         "device's value here")
    if host is None:
        host = HostFacts(16384.0, 12000.0, 400.0, 500.0, 1000.0, "phone")
        memory_from = not_measured
    elif gpu:
        memory_from = entry("calibrated", "torch.cuda.mem_get_info at calibration; runtime = "
                            "device memory of a fresh CUDA context")
    else:
        memory_from = entry("calibrated", "/proc/meminfo at calibration; runtime = RSS of a "
                            "fresh process importing torch, transformers, peft")
    power = host.power
    idle_w = IDLE_W if power is None else round(power.idle_w, 1)
    sections = {
        "memory": {"ram_mb": round(host.ram_mb, 1),
                   "usable_ram_mb": round(0.9 * host.available_mb, 1),
                   "runtime_overhead_mb": round(host.runtime_overhead_mb, 1),
                   "tensors_in_rss": not gpu},
        "storage": {"read_mb_per_s": round(host.read_mb_per_s, 1),
                    "write_mb_per_s": round(host.write_mb_per_s, 1)},
        "network": {"downlink_mbps": 1000.0, "uplink_mbps": 1000.0, "rtt_ms": 1.0},
        "power": {"idle_w": idle_w, "io_w": idle_w + 2.0, "standby_w": STANDBY_W},
        "thermal": {"ambient_c": 25.0, "resistance_c_per_w": 0.5, "time_constant_s": 300.0,
                    "throttle_start_c": 95.0, "throttle_full_c": 105.0,
                    "min_speed_factor": 0.8},
    }
    measured = memory_from is not not_measured
    provenance = {
        "memory": memory_from,
        "storage": entry("calibrated", "sequential write with fsync, read with the page "
                         "cache dropped") if measured else not_measured,
        "network": entry("assumed", "LAN defaults; not measured"),
        "power": entry("assumed", "power model, no meter") if power is None else
        entry("calibrated", "NVML total-energy counter, idle between calibration loads"),
        "power.standby_w": entry("assumed", "not measured: a screen-off, radio-idle phone's "
                                 "standby drain; set the device's value here"),
        "thermal": entry("assumed", "a cooled host that does not throttle"),
    }
    return sections, provenance


def _heap_retention(data: dict[str, Any], records: TraceRecords, bench: Bench,
                    writer: TraceWriter, *, quick: bool, today: str,
                    progress: Progress | None) -> None:
    """How much freed memory the device's allocator keeps resident in a training step."""
    plan = retention_probes(quick)
    measured = []
    for i, p in enumerate(plan):
        if p.label in records.retention:
            got = StepMemory(*records.retention[p.label])
        else:
            got = bench.probe_memory(p)
            writer.write_record("retention", label=p.label, baseline_bytes=got.baseline_bytes,
                                high_water_bytes=got.high_water_bytes)
        measured.append((p, got))
        if progress:
            progress(i + 1, len(plan), f"heap retention {p.label}")
    fit = retention_from(measured)
    data["memory"]["heap_retention"] = fit.retention
    data["provenance"]["memory.heap_retention"] = {
        "kind": "calibrated", "source": "VmHWM of fresh processes (edgetwin.calibration.allocator)",
        "date": today, "note": fit.note()}


def _correct_in_situ(data: dict[str, Any], profile: DeviceProfile, records: TraceRecords,
                     bench: Bench, writer: TraceWriter, *, quick: bool, gpu: bool,
                     progress: Progress | None) -> DeviceProfile:
    """Time whole sessions of the probe models, several of each, fold the in-situ
    correction into every op cost, and fit what a session costs beyond its steps and how
    much it varies (edgetwin.calibration.sessions)."""
    plan = probes(quick)
    # the full run times every probe in two passes, one after the other, so that a slow
    # spell of a shared machine moves some of a probe's sessions, not the fit
    passes, repeats, steps = (1, 3, 3) if quick else (2, 2, 5)
    runs: list[tuple[Probe, list[ProbeSession]]] = [(p, []) for p in plan]
    for n in range(passes):
        kept = [[records.probe_sessions.get((p.label, n, r)) for r in range(repeats)]
                for p in plan]
        todo = [i for i, k in enumerate(kept) if any(h is None for h in k)]
        if progress:
            progress(n, passes, f"probe sessions, pass {n + 1} of {passes}")
        if todo:  # every probe's sessions interleaved: drift shows in their spread
            got = bench.probe_sessions([plan[i] for i in todo], steps=steps, repeats=repeats,
                                       seed=1 + n)
            for i, sessions in zip(todo, got, strict=True):
                for r, one in enumerate(sessions):
                    writer.write_record("probe_session", label=plan[i].label,
                                        setup_s=one.setup_s, step_times_s=list(one.step_times_s),
                                        **{"pass": n, "repeat": r})
                kept[i] = list(sessions)
        for i, k in enumerate(kept):
            runs[i][1].extend(h for h in k if h is not None)
    timed = [(p, steady_s(ss)) for p, ss in runs]
    floor = physical_bounds(records.measurements).min_overhead_s or 0.0
    fix = fit_in_situ(profile, timed, floor)
    fit = fit_sessions(profile, runs, floor)
    session = {"session_cv": fit.session_cv, "step_cv": fit.step_cv,
               "session_setup_s": fit.session_setup_s,
               "session_setup_s_per_mparam": fit.session_setup_s_per_mparam,
               "first_step_extra": fit.first_step_extra}
    data["compute"] = {**session, **to_mapping(apply_in_situ(profile, fix))["compute"]}
    how = (f"x{fix.overhead_factor:.3f} on every launch overhead and x{fix.factor:.3f} on "
           f"device time (a step costs the larger of its launch and device times)" if gpu else
           f"x{fix.factor:.3f} for contractions, x{fix.other_factor:.3f} for other ops and "
           f"{fix.overhead_s * 1e6:.2f} us a kernel launch")
    if not gpu and floor and fix.overhead_s <= floor * 1.01:
        how += f" (the launch at its floor, half an all-but-empty op's {2 * floor * 1e6:.2f} us)"
    each = len(runs[0][1])
    note = (f"op costs from the micro-benchmarks, then {how}, fitted to the steady steps of "
            f"{len(timed)} probe models, {each} sessions each, every session in a process of "
            f"its own (step error {fix.mape_pct:.1f} % on them): "
            + "; ".join(f"{lbl} {m:.4f} s" for lbl, m, _ in fix.probes))
    today = data["provenance"]["compute"]["date"]
    for key in list(data["provenance"]):
        if key.startswith("compute."):
            data["provenance"][key]["note"] += "; then corrected by compute.in_situ"
    data["provenance"]["compute.in_situ"] = {  # written once: every op's fit refers to it
        "kind": "calibrated", "source": "whole training sessions of probe models",
        "date": today, "note": note}
    source = "sessions of the probe models (edgetwin.calibration.sessions)"
    data["provenance"].update({
        "compute.session_cv": {"kind": "calibrated", "source": source, "date": today,
                               "note": fit.note(), "fit_error": {
                                   "held_out_probe_rms_pct": round(100 * fit.model_error, 2),
                                   "probes": fit.probes}},
        "compute.step_cv": {"kind": "calibrated", "source": source, "date": today,
                            "note": "steady steps around their session's mean, root mean "
                                    f"square over {fit.sessions} sessions"},
        "compute.session_setup_s": {
            "kind": "calibrated", "source": source, "date": today,
            "note": "building the model with random weights and its optimizer, fitted as a "
                    "fixed part and one per million parameters (session_setup_s_per_mparam) "
                    "to the probes' median set-ups"},
        "compute.first_step_extra": {
            "kind": "calibrated", "source": source, "date": today,
            "note": "the first step's time beyond a steady one, as a share of it: the median "
                    f"over {fit.sessions} sessions"}})
    return parse_profile(data, f"calibration of {profile.name}")


def write_profile(profile: DeviceProfile, path: Path, fits_note: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Device profile written by edgetwin calibrate. {fits_note}\n"
    path.write_text(header + dump_yaml(to_mapping(profile), width=100))
