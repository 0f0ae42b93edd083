"""What happened is in the outputs: stale updates are a status of their own, energy adds
up between rounds.csv and summary.json, and a group that cannot fit in memory is flagged."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from edgetwin.emulator.engine import Engine
from edgetwin.emulator.output.simulate import simulate
from edgetwin.emulator.scenario import load_scenario

from .emulator_helpers import SCENARIOS, build, small_scenario

PARTS = ("energy_j_in_rounds", "energy_j_after_last_round", "energy_j_running_at_stop")


def _run(tmp_path: Path, overrides: list[str]) -> tuple[dict[str, Any], list[dict[str, str]],
                                                         list[dict[str, str]], str]:
    scenario = load_scenario(SCENARIOS / "thousand_clients.yaml", overrides)
    out = simulate(scenario, tmp_path / "run", plots=False).folder
    with (out / "rounds.csv").open() as fh:
        rounds = list(csv.DictReader(fh))
    with (out / "client_sessions.csv").open() as fh:
        sessions = list(csv.DictReader(fh))
    summary = json.loads((out / "summary.json").read_text())
    return summary, rounds, sessions, (out / "report.md").read_text()


def _energy_adds_up(summary: dict[str, Any], rounds: list[dict[str, str]],
                    sessions: list[dict[str, str]]) -> None:
    """rounds.csv plus the named parts is summary.json's energy, to the joule, and that is
    client_sessions.csv's."""
    in_rounds = sum(float(r["energy_j"]) for r in rounds)
    assert in_rounds == pytest.approx(summary["energy_j_in_rounds"], abs=1.0)
    assert sum(summary[k] for k in PARTS) == pytest.approx(summary["energy_j"], abs=1.0)
    assert sum(float(s["energy_j"]) for s in sessions) == pytest.approx(summary["energy_j"],
                                                                        abs=1.0)


def test_async_stale_updates_are_their_own_status_and_energy_adds_up(tmp_path: Path) -> None:
    summary, rounds, sessions, report = _run(tmp_path, ["orchestration.mode=async",
                                                        "stop.rounds=60"])
    status = Counter(s["status"] for s in sessions)
    stale = summary["failures"]["stale"]
    assert stale > 0 and status["stale"] == stale
    assert sum(g["failures"]["stale"] for g in summary["groups"].values()) == stale
    # completed no longer counts them; every stale report discarded in a round is one
    assert summary["completed_sessions"] == status["completed"]
    assert sum(int(r["discarded_stale"]) for r in rounds) <= stale
    assert sum(int(r["reported"]) for r in rounds) <= status["completed"]
    assert f"discarded as stale (the session completed; the server did not use its " \
           f"report): {stale:,}" in report
    assert "| stale |" in report
    # stale sessions did the whole session: every step and the whole upload
    done = [s for s in sessions if s["status"] == "stale"]
    assert all(int(s["steps"]) == 10 and int(s["upload_bytes"]) > 0 for s in done)
    _energy_adds_up(summary, rounds, sessions)
    assert summary["energy_j_running_at_stop"] > 0  # sessions in flight at the stop
    assert summary["energy_j"] > summary["energy_j_in_rounds"]


def test_sync_energy_adds_up_when_the_stop_cuts_a_round(tmp_path: Path) -> None:
    summary, rounds, sessions, report = _run(tmp_path, ["stop.rounds=null",
                                                        "stop.virtual_time_s=4000"])
    assert summary["stop_reason"] == "virtual_time"
    assert summary["failures"]["stale"] == 0 and "| stale |" not in report
    _energy_adds_up(summary, rounds, sessions)
    assert summary["energy_j_running_at_stop"] > 0
    assert "kJ in sessions the stop cut short" in report


def _memory_bound() -> dict[str, Any]:
    """Full fine-tuning of Qwen2.5-0.5B: about 8.6 GB a session, more than any phone has,
    less than an AGX Orin."""
    data = small_scenario(workload={"model": "qwen2.5-0.5b", "method": "full"},
                          orchestration={"clients_per_round": 5, "deadline_s": 7200},
                          stop={"rounds": 2})
    data["fleet"]["groups"][1] = {"name": "orins", "profile": "jetson-agx-orin-64gb",
                                  "share": 0.4, "setup": {"batch": 1, "seq": 64}}
    return data


def test_a_group_that_cannot_fit_in_memory_is_flagged_before_the_run(tmp_path: Path) -> None:
    scenario = build(_memory_bound())
    engine = Engine(scenario, SCENARIOS, 3)
    assert len(engine.warnings) == 1  # before the run: the Engine has it once built
    line = engine.warnings[0]
    assert "'phones'" in line and "96% of its 24 clients" in line
    assert "8,617 MB" in line and "median 7,932 MB" in line
    out = simulate(scenario, tmp_path / "run", plots=False)
    assert out.results.warnings == engine.warnings
    assert out.summary["warnings"] == [line]
    assert out.summary["groups"]["phones"]["failures"]["out_of_memory"] > 0
    assert out.summary["groups"]["orins"]["failures"]["out_of_memory"] == 0
    report = (out.folder / "report.md").read_text()
    assert f"## Warnings\n\n- {line}\n" in report


def test_a_fleet_that_fits_has_no_warning() -> None:
    engine = Engine(build(small_scenario()), SCENARIOS, 3)
    assert engine.warnings == ()
