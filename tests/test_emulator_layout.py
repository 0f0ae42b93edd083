"""The emulator's house rules: configuration loads no implementation, every module
reads in one sitting, and each policy named in configuration has an implementation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from emulator.selection.params import POLICY_NAMES
from emulator.selection.registry import POLICIES

ROOT = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ("emulator.engine", "emulator.sync_rounds", "emulator.async_rounds",
                   "emulator.session", "emulator.steps", "emulator.fleet", "emulator.costs",
                   "emulator.checkin", "emulator.selection.policies",
                   "emulator.selection.registry", "emulator.selection.view", "simpy")


def test_loading_a_scenario_loads_no_engine_policy_or_session_code() -> None:
    code = ("import json, sys; import emulator.scenario, emulator.config; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                                       capture_output=True, text=True).stdout)
    assert "emulator.config" in loaded
    assert [m for m in IMPLEMENTATIONS if m in loaded] == []


def test_no_emulator_module_is_over_400_lines() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
             for p in (ROOT / "emulator").rglob("*.py")}
    assert len(sizes) > 20
    assert {p: n for p, n in sizes.items() if n > 400} == {}


def test_every_configured_policy_has_an_implementation() -> None:
    assert sorted(POLICIES) == sorted(POLICY_NAMES)
