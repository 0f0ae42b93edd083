"""Facts about the machine being calibrated, read from the OS: what a profile records."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgetwin.calibration.meters.procmem import read_status

MIB = 1024 * 1024


def facts(device: str, threads: int) -> dict[str, Any]:
    import numpy
    import torch

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {"host": platform.node(), "cpu": cpu, "logical_cpus": os.cpu_count() or 0,
           "threads": threads, "device": device, "os": platform.platform(),
           "python": platform.python_version(), "torch": torch.__version__,
           "numpy": numpy.__version__}
    if device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(0)
    mode = power_mode()
    if mode:
        out["mode"] = mode
    return out


def power_mode() -> str:
    """A Jetson's nvpmodel mode as `nvpmodel -q` names it (`15W`, `MAXN_SUPER`), or ""
    where there is no nvpmodel: the mode every figure of the profile was measured in."""
    try:
        done = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in done.stdout.splitlines():  # "NV Power Mode: 15W", then the mode's number
        if line.startswith("NV Power Mode:"):
            return line.split(":", 1)[1].strip()
    return ""


def memory_mb() -> tuple[float, float]:
    """(MemTotal, MemAvailable) in MiB."""
    info: dict[str, float] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        info[key] = float(rest.split()[0]) / 1024
    return info["MemTotal"], info.get("MemAvailable", info["MemTotal"])


def gpu_memory_mb() -> tuple[float, float]:
    """(total, free) memory of CUDA device 0 in MiB."""
    import torch

    free, total = torch.cuda.mem_get_info(0)
    return total / MIB, free / MIB


def gpu_runtime_overhead_mb() -> float:
    """Device memory a fresh process takes before any tensor: the CUDA context."""
    code = ("import torch, sys; torch.zeros(1, device='cuda'); "
            "f, t = torch.cuda.mem_get_info(0); "
            "sys.stdout.write(str(t - f - torch.cuda.memory_reserved(0)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    return int(out.stdout.strip()) / MIB


def runtime_overhead_mb() -> float:
    """Resident set of a fresh trainer process before any tensor: Python, torch,
    transformers and peft imported."""
    code = ("import torch, transformers, peft, sys; "
            "sys.stdout.write(open('/proc/self/status').read())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    return read_status(out.stdout, "subprocess")["VmRSS"] / MIB


def storage_mb_per_s(size_mb: int) -> tuple[float, float]:
    """Sequential write (with fsync) and read (cache dropped for the file) throughput."""
    block = os.urandom(MIB)
    with tempfile.NamedTemporaryFile(dir=Path.cwd(), delete=True) as fh:
        t0 = time.perf_counter()
        for _ in range(size_mb):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
        write = size_mb / (time.perf_counter() - t0)
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        t0 = time.perf_counter()
        with open(fh.name, "rb", buffering=0) as rd:
            while rd.read(4 * MIB):
                pass
        read = size_mb / (time.perf_counter() - t0)
    return write, read


def has_battery() -> bool:
    return any(Path("/sys/class/power_supply").glob("BAT*"))


def device_class() -> str:
    """phone (Android), board (a Jetson), laptop (has a battery) or server."""
    if Path("/system/build.prop").exists():
        return "phone"
    compatible = Path("/proc/device-tree/compatible")
    if Path("/etc/nv_tegra_release").exists() or (
            compatible.exists() and b"tegra" in compatible.read_bytes()):
        return "board"
    return "laptop" if has_battery() else "server"
