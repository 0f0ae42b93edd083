"""A run folder re-runs from its own scenario.resolved.yaml: the same sessions and rounds,
byte for byte, with the files the scenario names copied in; an earlier run is not
overwritten by accident."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from edgetwin.cli import main

from .emulator_helpers import SCENARIOS, small_scenario
from .hil_helpers import with_standin_profiles

SHIPPED = sorted(p.name for p in SCENARIOS.glob("*.yaml"))
SHORTER = {"thousand_clients.yaml": ["stop.rounds=12"], "hil_local.yaml": ["stop.rounds=20"],
           "edgeflowertune_8client.yaml": ["stop.rounds=30"]}  # the same rules, fewer rounds


def _simulate(scenario: Path, out: Path, *extra: str) -> None:
    code = main(["simulate", str(scenario), "--out", str(out), "--quiet", "--no-plots", *extra])
    assert code == 0


def _same_outputs(a: Path, b: Path) -> None:
    """Every file but run.json (the host and the wall time), inputs/ included."""
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    for name in names:
        if name != "run.json":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_reruns_from_its_folder(tmp_path: Path, name: str, mode: str) -> None:
    scenario = with_standin_profiles(SCENARIOS / name, tmp_path)
    sets = [f"orchestration.mode={mode}", *SHORTER.get(name, [])]
    first, again = tmp_path / "run", tmp_path / "again"
    _simulate(scenario, first, *(a for s in sets for a in ("--set", s)))
    _simulate(first / "scenario.resolved.yaml", again)
    _same_outputs(first, again)
    record = yaml.safe_load((again / "scenario.resolved.yaml").read_text())["run"]
    assert set(record["profiles_sha256"]) == {
        g["profile"] for g in yaml.safe_load(
            (first / "scenario.resolved.yaml").read_text())["fleet"]["groups"]}


def test_files_named_by_relative_path_travel_with_the_run(tmp_path: Path) -> None:
    src = tmp_path / "study"
    (src / "traces").mkdir(parents=True)
    (src / "traces" / "cell.csv").write_text(
        "time_s,downlink_mbps,uplink_mbps\n0,20,4\n300,5,1\n900,40,10\n")
    (src / "traces" / "online.csv").write_text("client,start_s,end_s\n" + "".join(
        f"{c},{c * 120},{c * 120 + 5400}\n" for c in range(12)))
    shutil.copytree(SCENARIOS / "models", src / "models")
    d = small_scenario(availability={"trace": "traces/online.csv"})
    d["workload"] = {"model": "models/desk-llama", "lora_targets": "all-linear"}
    d["fleet"]["groups"][0]["network"] = {"trace": {"file": "traces/cell.csv",
                                                    "mode": "absolute"}}
    d["fleet"]["groups"][1]["network"] = {"trace": "traces/cell.csv"}
    (src / "study.yaml").write_text(yaml.safe_dump(d))
    first = tmp_path / "runs" / "first"
    _simulate(src / "study.yaml", first)
    shutil.rmtree(src)  # the run folder alone must be enough
    moved = tmp_path / "elsewhere" / "first"
    shutil.copytree(first, moved)
    _simulate(moved / "scenario.resolved.yaml", tmp_path / "again")
    _same_outputs(first, tmp_path / "again")
    resolved = yaml.safe_load((moved / "scenario.resolved.yaml").read_text())
    assert resolved["availability"]["trace"] == "inputs/online.csv"
    assert resolved["workload"]["model"] == "inputs/desk-llama"
    assert [g["network"]["trace"] for g in resolved["fleet"]["groups"]] == [
        {"file": "inputs/cell.csv", "mode": "absolute"}, {"file": "inputs/cell.csv",
                                                          "mode": "shape"}]


def test_an_earlier_run_is_kept_unless_overwrite(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(small_scenario()))
    out = tmp_path / "run"
    _simulate(path, out)
    (out / "stale.png").write_bytes(b"an earlier run's plot")
    before = (out / "client_sessions.csv").read_bytes()
    code = main(["simulate", str(path), "--out", str(out), "--quiet", "--seed", "9"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"edgetwin: error: {out}: --out: holds an earlier run: choose another folder, or "
        "pass --overwrite to replace it")
    assert (out / "client_sessions.csv").read_bytes() == before
    _simulate(path, out, "--seed", "9", "--overwrite")
    assert not (out / "stale.png").exists()  # cleared, not layered
    assert (out / "client_sessions.csv").read_bytes() != before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    assert main(["simulate", str(path), "--out", str(other), "--quiet", "--overwrite"]) == 2
    assert "is not empty and holds no run" in capsys.readouterr().err
    assert (other / "todo.txt").read_text() == "mine"
    code = main(["simulate", str(out / "scenario.resolved.yaml"), "--out", str(out),
                 "--quiet", "--overwrite"])
    assert code == 2 and "which this run reads" in capsys.readouterr().err
    (out / "mine").mkdir()  # a scenario kept inside an earlier run is never cleared
    (out / "mine" / "s.yaml").write_text(path.read_text())
    code = main(["simulate", str(out / "mine" / "s.yaml"), "--out", str(out), "--quiet",
                 "--overwrite"])
    assert code == 2 and (out / "mine" / "s.yaml").is_file()
    capsys.readouterr()
    half = tmp_path / "half"  # one marker is not a run
    half.mkdir()
    (half / "run.json").write_text("{}")
    (half / "precious.txt").write_text("mine")
    assert main(["simulate", str(path), "--out", str(half), "--quiet", "--overwrite"]) == 2
    assert (half / "precious.txt").is_file()
    capsys.readouterr()
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    _simulate(path, tmp_path / "link")
    _simulate(path, tmp_path / "link", "--overwrite")
    assert (tmp_path / "link").is_symlink() and (target / "client_sessions.csv").is_file()
