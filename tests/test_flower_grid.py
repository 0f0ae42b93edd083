"""Unmodified Flower apps over the emulated fleet: the virtual-time grid aggregates what
Flower's own simulation engine aggregates, and only completed sessions contribute."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgetwin.cli import main
from edgetwin.common.errors import InputError
from edgetwin.emulator.flower.app import load_app
from edgetwin.emulator.flower.run import AppDriver
from edgetwin.emulator.flower.workers import InProcess
from edgetwin.emulator.output.simulate import simulate
from edgetwin.emulator.scenario import load_scenario

from .emulator_helpers import numbers_scenario, under_flowers_own_simulation

APP = Path(__file__).resolve().parent / "flower_apps" / "numbers"


@pytest.mark.ray
def test_fedavg_over_the_grid_equals_flowers_own_simulation(tmp_path: Path) -> None:
    """The same unmodified app, every node sampled and none failing: the aggregated arrays
    and metrics over this grid are those of `flwr.simulation.run_simulation` (run in a
    process of its own, on Ray)."""
    pytest.importorskip("ray", reason="Flower's simulation engine runs on Ray")
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    assert main(["simulate", str(numbers_scenario(tmp_path)), "--app", str(APP), "--out",
                 str(tmp_path / "run"), "--quiet", "--no-plots", "--workers", "1",
                 "--run-config", f"out-file='{ours}'"]) == 0
    under_flowers_own_simulation(APP, "NUMBERS_APP_OUT", theirs)
    mine, flowers = json.loads(ours.read_text()), json.loads(theirs.read_text())
    assert mine == flowers  # every node sampled, every node reported
    assert mine["arrays"][0][0] == 3 * 1.5 + 100 * (1 + 2 + 3)
    assert [m["partition-id"] for m in mine["train"].values()] == [1.5, 1.5, 1.5]


def test_only_completed_sessions_contribute(tmp_path: Path) -> None:
    """Phones near their battery floor, boards that miss the deadline or lack the memory,
    churn and dropouts: every kind of failure."""
    path = numbers_scenario(
        tmp_path, seed=11,
        fleet={"clients": 48, "groups": [
            {"name": "phones", "profile": "flagship-phone-sd8gen3", "count": 20,
             "plugged_share": 0.0, "setup": {"batch": 1, "seq": 64}},
            {"name": "nanos", "profile": "jetson-nano-4gb", "count": 20,
             "setup": {"batch": 1, "seq": 64}},
            {"name": "crowded", "profile": "jetson-nano-4gb", "count": 8,
             "setup": {"batch": 1, "seq": 64},
             "spread": {"usable_ram": {"dist": "uniform", "low": 0.01, "high": 0.02}}}]},
        battery={"initial_pct": {"dist": "uniform", "low": 20.0, "high": 20.04},
                 "min_pct_to_join": 20.0, "abort_below_pct": 19.99},
        availability={"mean_session_s": 30, "online_fraction": 0.6,
                      "dropout_per_hour": 300.0, "charging_only": False},  # phones on battery
        data={"local_steps": 4}, orchestration={"deadline_s": 3})  # the nanos need 3.6 s
    out = tmp_path / "run"
    code = main(["simulate", str(path), "--app", str(APP), "--out", str(out), "--quiet",
                 "--no-plots", "--workers", "1", "--run-config",
                 f"num-server-rounds=6 fraction-train=0.5 out-file='{tmp_path / 'r.json'}'"])
    assert code == 0
    rows = list(csv.DictReader((out / "client_sessions.csv").open()))
    statuses = {r["status"] for r in rows}
    assert statuses == {"completed", "deadline", "interrupted", "offline", "out_of_memory",
                        "battery"}
    reported = json.loads((tmp_path / "r.json").read_text())["train"]
    metrics = list(csv.DictReader((out / "app_metrics.csv").open()))
    for exchange, rnd in enumerate(sorted(reported, key=int)):
        done = [int(r["client"]) for r in rows
                if int(r["round"]) == exchange and r["status"] == "completed"]
        assert done, f"round {rnd}: nobody completed"
        # each contributor's update is its client number: the aggregate is their mean
        assert reported[rnd]["partition-id"] == pytest.approx(np.mean(done))
        assert reported[rnd]["pid-squared"] == pytest.approx(np.mean(np.square(done)))
        assert float(metrics[exchange]["train_partition-id"]) == pytest.approx(np.mean(done))
    rounds = list(csv.DictReader((out / "rounds.csv").open()))
    assert [int(r["reported"]) for r in rounds] == [
        sum(1 for r in rows if int(r["round"]) == i and r["status"] == "completed")
        for i in range(len(rounds))]


def test_the_bytes_are_those_of_the_messages(tmp_path: Path) -> None:
    app = load_app(APP, "width=5000 num-server-rounds=1")
    run = simulate(load_scenario(numbers_scenario(tmp_path)), tmp_path / "run", plots=False,
                   driver=AppDriver(app, InProcess(app)))
    sessions = run.results.sessions
    # 5,000 float64 values serialised with numpy's header, in Flower's protobuf message
    # with the config (down) or the metrics (up): the wire size of each
    for column in ("download_bytes", "upload_bytes"):
        assert np.all(sessions[column] > 40_000) and np.all(sessions[column] < 40_500)
    assert len(set(sessions["download_bytes"])) == 1 and len(set(sessions["upload_bytes"])) == 1
    assert sessions["upload_bytes"][0] != sessions["download_bytes"][0]  # each its own


def test_bad_app_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="not a Flower App project"):
        load_app(tmp_path)
    with pytest.raises(InputError, match="--run-config: nope: not a key of the app"):
        load_app(APP, "nope=1")
    with pytest.raises(InputError, match="--run-config: width=: expected key=value"):
        load_app(APP, "num-server-rounds=2 width=")
    code = main(["simulate", str(numbers_scenario(tmp_path)), "--run-config", "width=3"])
    assert code == 2 and "give --app DIR" in capsys.readouterr().err


def test_the_grid_runs_the_clientapps_in_worker_processes(tmp_path: Path) -> None:
    """Two worker processes give the same run as this process."""
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        assert main(["simulate", str(numbers_scenario(tmp_path)), "--app", str(APP), "--out",
                     str(out), "--quiet", "--no-plots", "--workers", workers]) == 0
        outs.append(out)
    for name in ("client_sessions.csv", "rounds.csv", "app_metrics.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
    assert sys.modules.get("numbers_app") is not None  # loaded here for workers=1


@pytest.mark.ray
def test_the_clientapps_run_on_a_ray_cluster_with_the_same_results(tmp_path: Path) -> None:
    """`--ray auto` starts a local Ray instance (none to join here) and gives the run
    that this process gives."""
    pytest.importorskip("ray", reason="the Ray extra is not installed")
    outs = []
    for how in (["--workers", "1"], ["--ray", "auto"]):
        out = tmp_path / how[0].strip("-")
        assert main(["simulate", str(numbers_scenario(tmp_path)), "--app", str(APP), "--out",
                     str(out), "--quiet", "--no-plots", *how]) == 0
        outs.append(out)
    for name in ("client_sessions.csv", "rounds.csv", "app_metrics.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()


def test_a_session_starts_from_the_device_state_it_was_admitted_with(tmp_path: Path) -> None:
    """Phones whose sessions drain them below the join threshold and whose weak charger
    brings them back between rounds: every session starts at the charge (and the
    cooled temperature) its admission saw, never at the last one written."""
    path = numbers_scenario(
        tmp_path, fleet={"clients": 4, "groups": [
            {"name": "phones", "profile": "flagship-phone-sd8gen3", "share": 1.0,
             "plugged_share": 1.0, "setup": {"batch": 4, "seq": 128}}]},
        data={"local_steps": 30},
        battery={"initial_pct": 31.0, "min_pct_to_join": 30.0, "abort_below_pct": 5.0,
                 "charge_w": 0.5})
    out = tmp_path / "run"
    assert main(["simulate", str(path), "--app", str(APP), "--out", str(out), "--quiet",
                 "--no-plots", "--workers", "1", "--run-config",
                 f"num-server-rounds=8 fraction-train=0.5 out-file='{tmp_path / 'r.json'}'"]) == 0
    rows = list(csv.DictReader((out / "client_sessions.csv").open()))
    assert len(rows) >= 16
    assert min(float(r["battery_start_pct"]) for r in rows) >= 30.0
    assert min(float(r["battery_end_pct"]) for r in rows) < 30.0  # the charger mattered
    last: dict[str, dict[str, str]] = {}
    cooled = []
    for r in rows:  # a device cools between its sessions
        if r["client"] in last:
            cooled.append(float(last[r["client"]]["temp_end_c"]) - float(r["temp_start_c"]))
        last[r["client"]] = r
    assert min(cooled) >= 0 and max(cooled) > 0.5


def test_the_shipped_app_learns_over_the_fleet(tmp_path: Path) -> None:
    """scenarios/apps/edge_lora over eight boards, two rounds: real LoRA training, and
    the held-out perplexity falls."""
    pytest.importorskip("peft", reason="the shipped app trains with PEFT")
    shipped = APP.parents[2] / "scenarios" / "apps" / "edge_lora"
    path = numbers_scenario(tmp_path, fleet={"clients": 8, "groups": [
        {"name": "boards", "profile": "jetson-orin-nano-8gb", "share": 1.0,
         "plugged_share": 1.0, "setup": {"batch": 1, "seq": 64}}]})
    out = tmp_path / "run"
    assert main(["simulate", str(path), "--app", str(shipped), "--out", str(out), "--quiet",
                 "--workers", "1", "--run-config",
                 "num-server-rounds=2 fraction-train=0.5 local-steps=4 eval-windows=8"]) == 0
    rows = list(csv.DictReader((out / "app_metrics.csv").open()))
    ppl = [float(r["server_perplexity"]) for r in rows]
    assert len(ppl) == 3 and ppl[2] < ppl[0]
    assert [float(r["traffic_bytes"]) for r in rows] == sorted(float(r["traffic_bytes"])
                                                               for r in rows)
    assert (out / "app_quality.png").stat().st_size > 0
    assert "## What the app reported" in (out / "report.md").read_text()
