"""Periodic validation: `edgetwin simulate` replays every K-th round on attached devices."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from edgetwin.calibration.profile_builder import write_profile
from edgetwin.emulator.output.folder import load_run
from edgetwin.hil.replay.recalibrate import corrected
from edgetwin.profiles.device import Provenance, load_profile
from tests.cli_runs import edgetwin
from tests.hil_helpers import local_devices, tiny_scenario


def test_every_fifth_round_is_validated_and_corrected_when_out_of_control(
        tmp_path: Path) -> None:
    local_devices(tmp_path)
    for name in ("one", "two"):  # profiles three times too fast: the first check is out
        path = tmp_path / f"{name}.yaml"
        p = load_profile(str(path))
        write_profile(corrected(p, 1 / 3, 0.0, Provenance("assumed", "a test", "2026-12-06")),
                      path)
    scenario = tiny_scenario(tmp_path, rounds=10, validation={
        "devices": "devices.yaml", "every_rounds": 5, "sample": 2, "recalibrate": True})
    run = tmp_path / "run"
    done = edgetwin("simulate", str(scenario), "--out", str(run), "--quiet", "--no-plots")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((run / "validation.csv").open()))
    assert {int(r["round"]) for r in rows} == {4, 9}  # a row per validated round and device
    assert {r["device"] for r in rows} <= {"dev-one", "dev-two"}
    resolved = yaml.safe_load((run / "scenario.resolved.yaml").read_text())
    corrections = resolved["run"]["validation_corrections"]
    for r in rows:
        assert int(r["sessions"]) >= 1 and float(r["measured_step_s"]) > 0
        error, low, high = (float(r[k]) for k in ("error", "lower_limit", "upper_limit"))
        assert low < 0 < high
        assert int(r["in_control"]) == (low <= error <= high)
        # corrected exactly where the error left its limits
        assert (r["step_factor"] != "") == (r["in_control"] == "0")
        if r["round"] == "4":  # three times too fast: far out, corrected about three-fold
            assert r["in_control"] == "0" and error < -0.5 and float(r["step_factor"]) > 1.5
    assert {(c["round"], c["group"]) for c in corrections} == {
        (int(r["round"]), r["group"]) for r in rows if r["in_control"] == "0"}
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
