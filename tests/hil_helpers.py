"""Attached devices for tests: local devices standing for two small device classes,
a scenario over them whose sessions take a fraction of a second, and the command."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from edgetwin.profiles.device import shipped_profiles
from tests.cli_runs import edgetwin

TINY_MODEL = {"_name_or_path": "tiny-llama", "model_type": "llama", "hidden_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": 16, "intermediate_size": 128, "vocab_size": 512,
              "tie_word_embeddings": False, "hidden_act": "silu"}


def wait_until_quiet(cpus: list[int], timeout_s: float = 60.0) -> None:
    """Wait (at most `timeout_s`) until these CPUs spend a second under 10 % busy: an
    experiment on a quiet device, as a careful experimenter runs one."""
    from edgetwin.calibration.load import cpu_jiffies

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        a = cpu_jiffies(cpus)
        time.sleep(1.0)
        b = cpu_jiffies(cpus)
        if a is None or b is None or (b[0] - a[0]) <= 0.1 * max(b[1] - a[1], 1):
            return


def profile_named(src: str, name: str, out: Path) -> Path:
    """A shipped profile under another name: the class a test device stands for."""
    data = yaml.safe_load(shipped_profiles()[src].read_text())
    data["name"] = name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def local_devices(folder: Path, *, native: bool = False) -> Path:
    """Two local devices on this host, standing for the classes `one` and `two`."""
    folder.mkdir(parents=True, exist_ok=True)
    profile_named("laptop-x86-8core", "one", folder / "one.yaml")
    profile_named("laptop-x86-8core", "two", folder / "two.yaml")
    cpus = sorted(os.sched_getaffinity(0))
    runner = {"kind": "native"} if native else {"kind": "torch"}
    devices = {"devices": [
        {"name": "dev-one", "profile": "one.yaml", "runner": runner,
         "transport": {"kind": "local", "cpus": cpus[:1], "threads": 1,
                       "workdir": str(folder / "work-one")}},
        {"name": "dev-two", "profile": "two.yaml", "runner": runner,
         "transport": {"kind": "local", "cpus": cpus[-1:], "threads": 1,
                       "workdir": str(folder / "work-two")}}]}
    path = folder / "devices.yaml"
    path.write_text(yaml.safe_dump(devices, sort_keys=False))
    return path


def tiny_scenario(folder: Path, *, steps: int = 3, rounds: int = 6, **extra: Any) -> Path:
    """Forty clients of the two classes, a tiny Llama with LoRA."""
    (folder / "tiny-llama").mkdir(parents=True, exist_ok=True)
    (folder / "tiny-llama" / "config.json").write_text(json.dumps(TINY_MODEL))
    net = {"downlink_mbps": 50, "uplink_mbps": 20, "latency_ms": 20}
    data: dict[str, Any] = {
        "name": "tiny", "seed": 5,
        "fleet": {"clients": 40, "groups": [
            {"name": "ones", "profile": "one.yaml", "share": 0.5,
             "setup": {"batch": 1, "seq": 32}, "network": net},
            {"name": "twos", "profile": "two.yaml", "share": 0.5,
             "setup": {"batch": 1, "seq": 32}, "network": net}]},
        "workload": {"model": "tiny-llama", "lora_rank": 4, "lora_targets": ["q_proj", "v_proj"]},
        "data": {"local_steps": steps},
        "orchestration": {"clients_per_round": 4, "overcommit": 0.5, "deadline_s": 60},
        "stop": {"rounds": rounds}, **extra}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def simulated(folder: Path, **scenario: Any) -> Path:
    run = folder / "run"
    done = edgetwin("simulate", str(tiny_scenario(folder, **scenario)), "--out", str(run),
                    "--quiet", "--no-plots")
    assert done.returncode == 0, done.stderr
    return run


def journal_entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()[1:]
    return [json.loads(line) for line in lines if line.strip()]


def wait_for(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def agent_processes(workdir: Path) -> list[tuple[int, int]]:
    """(pid, parent pid) of the agent processes working in `workdir`."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"edgetwin.hil.agent" in cmd and str(workdir).encode() in cmd:
            out.append((int(proc.name), ppid))
    return out


def with_standin_profiles(scenario: Path, folder: Path) -> Path:
    """A shipped scenario ready to run here: one over profiles that calibration writes
    (`calibrated/NAME.yaml`) is copied into `folder` beside stand-ins of those profiles
    (a shipped profile under each name) and the models it names; any other is itself."""
    text = scenario.read_text()
    if "calibrated/" not in text:
        return scenario
    import shutil

    copy = folder / scenario.name
    copy.write_text(text)
    for model in (scenario.parent / "models").iterdir():
        shutil.copytree(model, folder / "models" / model.name, dirs_exist_ok=True)
    (folder / "calibrated").mkdir(exist_ok=True)
    data = yaml.safe_load(text)
    for group in data["fleet"]["groups"]:
        if group["profile"].startswith("calibrated/"):
            name = Path(group["profile"]).stem
            profile_named("laptop-x86-8core", name, folder / "calibrated" / f"{name}.yaml")
    return copy
