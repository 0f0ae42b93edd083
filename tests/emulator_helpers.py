"""Small scenarios built in code, for tests that run the engine many times."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import yaml

from edgetwin.emulator.config import Scenario
from edgetwin.emulator.engine import Engine, Results
from edgetwin.emulator.scenario import parse_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def small_scenario(**over: Any) -> dict[str, Any]:
    """A fast scenario as a mapping: 40 clients of two groups, GPT-2 LoRA."""
    data: dict[str, Any] = {
        "name": "test",
        "seed": 3,
        "fleet": {"clients": 40, "groups": [
            {"name": "phones", "profile": "flagship-phone-sd8gen3", "share": 0.6,
             "setup": {"batch": 2, "seq": 64}},
            {"name": "nanos", "profile": "jetson-nano-4gb", "share": 0.4,
             "setup": {"batch": 1, "seq": 64, "grad_accum": 2}}]},
        "workload": {"model": "gpt2", "lora_targets": ["c_attn"]},
        "data": {"local_steps": 3},
        "orchestration": {"clients_per_round": 5, "deadline_s": 120},
        "stop": {"rounds": 4},
    }
    for key, value in over.items():
        node = data
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return data


def build(data: dict[str, Any]) -> Scenario:
    return parse_scenario(data, "test.yaml", SCENARIOS)


def run(data: dict[str, Any]) -> Results:
    s = build(data)
    return Engine(s, SCENARIOS, s.seed or 0).run()


def numbers_scenario(folder: Path, **over: Any) -> Path:
    """Four boards on mains, always online, a generous deadline: nothing fails unless
    `over` says so (four: FedAvg's weights of 1/4 keep every sum exact, in any order)."""
    data: dict[str, Any] = {
        "name": "numbers", "seed": 5,
        "fleet": {"clients": 4, "groups": [
            {"name": "boards", "profile": "jetson-orin-nano-8gb", "share": 1.0,
             "plugged_share": 1.0, "setup": {"batch": 1, "seq": 64}}]},
        "workload": {"model": "gpt2", "lora_targets": ["c_attn"]},
        "data": {"local_steps": 2},
        "availability": {"mean_session_s": None, "online_fraction": 1.0},
        "orchestration": {"deadline_s": 100_000},
    }
    data.update(over)
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def under_flowers_own_simulation(app: Path, out_env: str, out: Path, nodes: int = 4) -> None:
    """`app` under Flower's `run_simulation` with `nodes` nodes on Ray, in a process of
    its own; the app writes what it saw to the file `$out_env` names (`out`)."""
    import os
    import subprocess
    import sys

    script = (
        "from pathlib import Path\n"
        "from flwr.simulation import run_simulation\n"
        "from edgetwin.emulator.flower.app import load_app, load_component\n"
        f"app = load_app(Path({str(app)!r}))\n"
        "run_simulation(load_component(app, 'serverapp'), load_component(app, 'clientapp'),\n"
        f"               num_supernodes={nodes}, backend_config={{'client_resources': "
        "{'num_cpus': 1},\n"
        "               'init_args': {'num_cpus': 2, 'include_dashboard': False}})\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, out_env: str(out)})
    assert done.returncode == 0, done.stderr[-2000:]


def benchmark_script(name: str) -> Any:
    """A script of `benchmarks/`, imported from its file (the path, and the modules as
    they were: the siblings it imports by name are not left behind)."""
    path = SCENARIOS.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    path_before, modules_before = list(sys.path), set(sys.modules)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path_before
        for added in set(sys.modules) - modules_before - {spec.name}:
            if Path(getattr(sys.modules[added], "__file__", None) or "").parent == path.parent:
                del sys.modules[added]
    return module
