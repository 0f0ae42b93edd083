"""A malformed scenario gets one line naming file, key path and problem; exit status 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli_runs import edgetwin, edgetwin_process

from .emulator_helpers import SCENARIOS


def _base() -> dict[str, Any]:
    return yaml.safe_load((SCENARIOS / "quickstart.yaml").read_text())  # type: ignore[no-any-return]


def _break(how: str) -> dict[str, Any]:
    d = _base()
    g = d["fleet"]["groups"]
    if how == "wrong type":
        d["orchestration"]["clients_per_round"] = "ten"
    elif how == "unknown key":
        d["orchestration"]["deadline"] = 30
    elif how == "missing profile":
        g[1]["profile"] = "jetson-thor-128gb"
    elif how == "negative bandwidth":
        g[1]["network"]["uplink_mbps"] = -5
    elif how == "shares":
        g[0]["share"] = 0.6
    elif how == "trace":
        d["availability"]["trace"] = "traces/nowhere.csv"
    elif how == "unknown policy":
        d["selection"]["policy"] = "fastest"
    elif how == "missing key":
        del d["fleet"]["groups"][0]["profile"]
    elif how == "overcommit as a percentage":
        d["orchestration"]["overcommit"] = 20
    elif how == "a comma in a group's name":
        g[0]["name"] = "phones, old"
    elif how == "more clients a round than the fleet":
        d["orchestration"]["clients_per_round"] = d["fleet"]["clients"] + 1
    elif how == "a spread clipped from above its top":
        g[1]["spread"] = {"usable_ram": {"dist": "lognormal", "mean": 1.0, "cv": 0.1,
                                         "low": 0.9, "high": 0.02}}
    return d


CASES = [
    ("wrong type", "orchestration.clients_per_round: expected an integer, got 'ten'"),
    ("unknown key", "orchestration.deadline: unknown key"),
    ("missing profile", "fleet.groups[1].profile: 'jetson-thor-128gb': unknown device profile"),
    ("negative bandwidth", "fleet.groups[1].network.uplink_mbps: must be > 0"),
    ("shares", "fleet.groups: shares sum to 0.9, not 1"),
    ("trace", "availability.trace: file 'traces/nowhere.csv' does not exist"),
    ("unknown policy", "selection.policy: unknown policy 'fastest'"),
    ("missing key", "fleet.groups[0].profile: missing required key"),
    ("overcommit as a percentage", "orchestration.overcommit: 20 is not a share in [0, 1] "
     "(0.3 selects 30 % more clients than clients_per_round; 20 would select 21 times as "
     "many)"),
    ("a comma in a group's name", "fleet.groups[0].name: 'phones, old' holds a comma or a "
     "control character: client_sessions.csv writes it unquoted"),
    ("more clients a round than the fleet",
     "orchestration.clients_per_round: 101 is more than the fleet's 100 clients"),
    ("a spread clipped from above its top", "fleet.groups[1].spread.usable_ram: lognormal "
     "needs low <= high, got low 0.9 and high 0.02"),
]


@pytest.mark.parametrize(("how", "message"), CASES, ids=[c[0] for c in CASES])
def test_malformed_scenario(tmp_path: Path, how: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_break(how)))
    out = tmp_path / "out"
    done = edgetwin("simulate", str(path), "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"edgetwin: error: {path}: ")
    assert message in lines[0], lines[0]
    assert not out.exists()  # nothing half-written


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nfleet: [1, 2\n")
    # the command as a process of its own: one line, no traceback, exit status 2
    done = edgetwin_process("simulate", str(path), timeout=120)
    assert done.returncode == 2 and "malformed YAML" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_bad_override(tmp_path: Path) -> None:
    done = edgetwin("simulate", str(SCENARIOS / "quickstart.yaml"), "--set", "stop.rounds=-",
                    "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "stop.rounds: expected an integer" in done.stderr


def test_a_bad_trace_file_is_named_as_the_user_gave_it(tmp_path: Path) -> None:
    """The run reads copies of the files a scenario names; an error in one names the
    user's file and the column, not the run folder's copy."""
    trace = tmp_path / "online.csv"
    trace.write_text("client,start_s,end_s,period_s\n0,0,10,abc\n")
    d = _base()
    d["availability"]["trace"] = "online.csv"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(d))
    out = tmp_path / "out"
    done = edgetwin("simulate", str(path), "--out", str(out))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"edgetwin: error: {trace.resolve()}: line 2: period_s: "
                                   "expected a number, got 'abc'")
    assert not out.exists()


def test_a_run_folder_without_its_inputs_is_named_as_such(tmp_path: Path) -> None:
    """A run folder copied without inputs/ (its copies of the files the scenario names):
    one line that says so, not a complaint about the profile or the model."""
    import shutil

    scenario = _base()
    shutil.copy(Path(__file__).resolve().parents[1] / "profiles" / "devices" /
                "laptop-x86-8core.yaml", tmp_path / "mine.yaml")
    scenario["fleet"]["groups"][0]["profile"] = "mine.yaml"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    run = tmp_path / "run"
    assert edgetwin("simulate", str(tmp_path / "s.yaml"), "--out", str(run), "--quiet",
                    "--no-plots").returncode == 0
    shutil.rmtree(run / "inputs")
    done = edgetwin("simulate", str(run / "scenario.resolved.yaml"), "--out",
                    str(tmp_path / "again"), "--quiet")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"edgetwin: error: {run}: inputs/: missing: the run "
                                   "folder's copies of the files its scenario names are gone "
                                   "(copy a run folder whole)")
