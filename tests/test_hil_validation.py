"""Periodic validation: `edgetwin simulate` replays every K-th round on attached devices."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from emulator.runfolder import load_run
from tests.hil_helpers import edgetwin, local_devices, tiny_scenario


def test_every_fifth_round_is_validated_and_recalibration_is_recorded(tmp_path: Path) -> None:
    local_devices(tmp_path)
    scenario = tiny_scenario(tmp_path, rounds=10, validation={
        "devices": "devices.yaml", "every_rounds": 5, "sample": 2, "recalibrate": True})
    run = tmp_path / "run"
    done = edgetwin("simulate", str(scenario), "--out", str(run), "--quiet", "--no-plots")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((run / "validation.csv").open()))
    assert {int(r["round"]) for r in rows} == {4, 9}  # a row per validated round and device
    assert {r["device"] for r in rows} <= {"dev-one", "dev-two"}
    for r in rows:
        assert int(r["sessions"]) >= 1 and float(r["measured_step_s"]) > 0
        assert 0.0 <= float(r["decision_agreement"]) <= 1.0
        assert float(r["step_factor"]) > 0
    resolved = yaml.safe_load((run / "scenario.resolved.yaml").read_text())
    corrections = resolved["run"]["validation_corrections"]
    assert [c["round"] for c in corrections] == sorted(c["round"] for c in corrections)
    assert {c["round"] for c in corrections} == {4, 9}
    assert load_run(run).scenario.validation is not None  # the folder loads as it is


def test_validation_without_devices_for_the_groups_is_refused(tmp_path: Path) -> None:
    local_devices(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text("devices:\n  - name: x\n    profile: laptop-x86-8core\n"
                     "    transport: {kind: local}\n")
    scenario = tiny_scenario(tmp_path, validation={"devices": "other.yaml"})
    done = edgetwin("simulate", str(scenario), "--out", str(tmp_path / "run"), "--quiet")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"edgetwin: error: {scenario}: validation.devices: no device of other.yaml stands for "
        "a group's profile (groups: one, two; devices stand for: laptop-x86-8core)")
    assert not (tmp_path / "run").exists()
    missing = tiny_scenario(tmp_path, validation={"devices": "nowhere.yaml"})
    done = edgetwin("simulate", str(missing), "--out", str(tmp_path / "run"), "--quiet")
    assert done.returncode == 2 and "validation.devices: file 'nowhere.yaml' does not exist" \
        in done.stderr
