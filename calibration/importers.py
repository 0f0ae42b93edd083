"""Correct an existing profile from real trainer runs.

- EdgeFlowerTune-style client metrics: one JSON object per client round (a JSON
  list, or JSON lines) with `train_time_sec`, `mean_step_time_sec`,
  `step_times_sec_json` (a JSON list, or its text), `avg_rss_mb`, `client_hwm_mb`,
  `upload_bytes`, `download_bytes`, and the run's `model`, `batch`, `seq`,
  `grad_accum`, `lora_rank`, `lora_alpha`, `lora_targets`.
- MobileFineTuner's memory monitor CSV (`sample,t_ms,VmPeak_kB,...,VmRSS_kB,...`):
  average and peak resident set of the trainer process.

The contraction throughput is re-solved so the profile reproduces the measured
median step time; the runtime's memory overhead is set from the measured RSS.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetwin.common.errors import InputError
from edgetwin.common.files import read_csv
from edgetwin.profiles.costmodel import MIB, predict_step
from edgetwin.profiles.device import DeviceProfile, Provenance
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import load_model
from edgetwin.profiles.published import solve_contraction_rate, with_contraction_rate
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import Workload, build_workload


@dataclass(frozen=True)
class ClientRun:
    workload: Workload
    step_times_s: list[float]
    avg_rss_mb: float | None
    hwm_mb: float | None
    upload_bytes: int | None
    where: str


def load_eft_metrics(path: Path) -> list[ClientRun]:
    text = path.read_text() if path.exists() else ""
    if not text.strip():
        raise InputError(str(path), "", "missing or empty")
    try:
        records = json.loads(text) if text.lstrip().startswith("[") else None
    except json.JSONDecodeError as err:
        raise InputError(str(path), f"line {err.lineno}", f"not JSON ({err.msg})") from None
    rows: list[tuple[str, Any]] = []
    if records is None:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise InputError(str(path), f"line {number}", f"not JSON ({err.msg})") \
                        from None
    else:
        rows = [(f"record {i}", r) for i, r in enumerate(records)]
    return [_client_run(r, str(path), key) for key, r in rows]


def _client_run(r: Any, where: str, key: str) -> ClientRun:
    if not isinstance(r, dict):
        raise InputError(where, key, "expected a JSON object")
    try:
        steps = r.get("step_times_sec_json")
        if isinstance(steps, str):
            steps = json.loads(steps)
        if not steps:
            n = int(r.get("local_steps", 0)) or 1
            steps = [float(r["mean_step_time_sec"])] * n if "mean_step_time_sec" in r else \
                [float(r["train_time_sec"]) / n]
        targets = r.get("lora_targets", ["q_proj", "v_proj"])
        if isinstance(targets, str):
            targets = targets.split(",")
        method = Method("lora", int(r.get("lora_rank", 8)), float(r.get("lora_alpha", 16)),
                        tuple(targets)) if r.get("method", "lora") == "lora" else Method("full")
        setup = TrainingSetup(batch=int(r["batch"]), seq=int(r["seq"]),
                              grad_accum=int(r.get("grad_accum", 1)),
                              serialization=r.get("serialization", "raw"))
        workload = build_workload(load_model(str(r["model"])), method, setup)
    except KeyError as err:
        raise InputError(where, f"{key}.{err.args[0]}", "missing") from None
    except (TypeError, ValueError, json.JSONDecodeError) as err:
        raise InputError(where, key, f"bad value ({err})") from None
    except InputError as err:
        raise InputError(where, f"{key}.{err.key or err.where}", err.problem) from None
    return ClientRun(workload, [float(s) for s in steps],
                     float(r["avg_rss_mb"]) if r.get("avg_rss_mb") is not None else None,
                     float(r["client_hwm_mb"]) if r.get("client_hwm_mb") is not None else None,
                     int(r["upload_bytes"]) if r.get("upload_bytes") is not None else None,
                     f"{where} {key}")


def load_mft_memory_csv(path: Path) -> tuple[float, float]:
    """(average VmRSS, peak VmHWM) in MiB from MobileFineTuner's proc_mem_monitor CSV."""
    rss: list[float] = []
    hwm = 0.0
    for number, row in enumerate(read_csv(path, ("VmRSS_kB",)), start=2):
        try:
            rss.append(float(row["VmRSS_kB"]) / 1024)
            hwm = max(hwm, float(row.get("VmHWM_kB") or 0) / 1024)
        except (TypeError, ValueError):
            raise InputError(str(path), f"line {number}", "expected numbers") from None
    if not rss:
        raise InputError(str(path), "", "no samples")
    return statistics.fmean(rss), max(hwm, max(rss))


def correct_profile(profile: DeviceProfile, runs: list[ClientRun], source: str
                    ) -> tuple[DeviceProfile, dict[str, float]]:
    """Re-solve contraction throughput and runtime memory from measured runs."""
    rates = [solve_contraction_rate(profile, r.workload, statistics.median(r.step_times_s))
             for r in runs]
    rate = statistics.median(rates)
    fixed = with_contraction_rate(profile, rate)
    errors = [predict_step(fixed, r.workload).step_time_s / statistics.median(r.step_times_s)
              - 1 for r in runs]
    memory = fixed.memory
    rss = [r for r in runs if r.avg_rss_mb is not None]
    if rss:
        persistent = [r.workload.memory.persistent_bytes / MIB if memory.tensors_in_rss else 0.0
                      for r in rss]
        overhead = statistics.median(max(r.avg_rss_mb or 0.0, 0.0) - p
                                     for r, p in zip(rss, persistent, strict=True))
        memory = dataclasses.replace(memory, runtime_overhead_mb=round(max(overhead, 1.0), 1))
    today = time.strftime("%Y-%m-%d")
    fit = {"step_mape_pct": round(statistics.fmean(abs(e) for e in errors) * 100, 3),
           "runs": float(len(runs))}
    provenance = dict(fixed.provenance)
    for key in ("compute.matmul.flops_per_s", "compute.attention.flops_per_s"):
        provenance[key] = Provenance("imported", source, today,
                                     "contraction throughput re-solved so the profile gives "
                                     "each run's median measured step time; the median of "
                                     "those rates", fit)
    if rss:
        provenance["memory.runtime_overhead_mb"] = Provenance(
            "imported", source, today, "measured avg RSS less the resident tensors")
    mismatched = [r for r in runs if r.upload_bytes is not None
                  and r.upload_bytes != r.workload.payload.upload_bytes]
    fit["upload_bytes_mismatches"] = float(len(mismatched))
    return dataclasses.replace(fixed, memory=memory, provenance=provenance), fit
