"""Flower's secure aggregation over the emulated fleet: SecAgg+ through Flower's own
workflow (`SecAggPlusWorkflow`) and mod (`secaggplus_mod`) completes as under Flower's
runtime, each node receiving its own copy of each message, and each stage is priced by
what it carries."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from edgetwin.cli import main

from .emulator_helpers import numbers_scenario, under_flowers_own_simulation

APP = Path(__file__).resolve().parent / "flower_apps" / "secagg"
STAGES = ["setup", "share_keys", "collect_masked_vectors", "unmask"]


def _run(tmp_path: Path, name: str, *how: str, config: str = "",
         scenario: Path | None = None) -> tuple[dict, Path]:
    out, written = tmp_path / name, tmp_path / f"{name}.json"
    path = scenario or numbers_scenario(tmp_path, data={"local_steps": 20})
    assert main(["simulate", str(path), "--app", str(APP), "--out", str(out), "--quiet",
                 "--no-plots", *how, "--run-config",
                 f"out-file='{written}' {config}".strip()]) == 0
    return json.loads(written.read_text()), out


def _rows(out: Path, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader((out / name).open()))


def test_secagg_plus_completes_in_process_and_in_worker_processes_alike(
        tmp_path: Path) -> None:
    """Every stage hears from all four nodes in both rounds, the aggregate is the mean
    of the nodes' updates (pid / 100: 0.015 a round), and worker processes give the
    same files byte for byte. Before each node got its own copy, the first node's mod
    consumed the shared message and the other three failed at stage 0."""
    mine, out = _run(tmp_path, "one", "--workers", "1")
    assert mine["stages"] == [[4, 4, 4, 4], [4, 4, 4, 4]]
    assert mine["arrays"][0][0] == pytest.approx(0.03, rel=0.02)  # sums of quantised values
    # the app's own mod ran before secaggplus_mod on every message, and each node's
    # context kept its count: round 2's fit is the node's seventh message
    assert [m[-1] for m in mine["fit_metrics"]["messages-seen"]] == [3.0, 7.0]
    theirs, out2 = _run(tmp_path, "two", "--workers", "2")
    assert theirs == mine
    for name in ("client_sessions.csv", "rounds.csv"):
        assert (out / name).read_bytes() == (out2 / name).read_bytes()


def test_each_stage_is_an_exchange_priced_by_what_it_carries(tmp_path: Path) -> None:
    """rounds.csv has one row per exchange with its message type, server round, kind and
    SecAgg+ stage; client_sessions.csv one per message with its kind. Only the stage that
    carries the model trains; the key exchanges cost a small fraction of it."""
    _, out = _run(tmp_path, "run", "--workers", "1")
    rounds = _rows(out, "rounds.csv")
    assert [r["stage"] for r in rounds] == STAGES * 2
    assert {r["message_type"] for r in rounds} == {"train"}
    assert [r["kind"] for r in rounds] == ["control", "control", "train", "control"] * 2
    assert [r["server_round"] for r in rounds] == ["1"] * 4 + ["2"] * 4
    sessions = _rows(out, "client_sessions.csv")
    assert len(sessions) == 4 * 8 and all(s["status"] == "completed" for s in sessions)
    by_kind = {k: [s for s in sessions if s["kind"] == k] for k in ("control", "train")}
    assert len(by_kind["control"]) == 24 and len(by_kind["train"]) == 8
    assert {s["steps"] for s in by_kind["control"]} == {"0"}
    assert {s["steps"] for s in by_kind["train"]} == {"20"}
    train = [r for r in rounds if r["kind"] == "train"]
    control = [r for r in rounds if r["kind"] == "control"]
    for r in control:  # a link's round trip and the keys' work against 20 training steps
        assert float(r["energy_j"]) < 0.1 * float(train[0]["energy_j"])
        assert float(r["duration_s"]) < 0.1 * float(train[0]["duration_s"])
    work_ms = [float(r["work_ms"]) for r in rounds[:4]]
    assert work_ms[0] > 0 and work_ms[3] == 0  # key pairs; unmasking forwards shares
    assert work_ms[1] > work_ms[0]  # shares and key agreements with three neighbours


def test_nodes_too_slow_to_train_drop_out_and_the_workflow_aggregates_the_rest(
        tmp_path: Path) -> None:
    """Two of six nodes answer the key exchanges but miss the training stage's timeout:
    SecAgg+ unmasks without them and the aggregate is the mean of the other four."""
    scenario = numbers_scenario(tmp_path, fleet={"clients": 6, "groups": [
        {"name": "boards", "profile": "jetson-orin-nano-8gb", "count": 4,
         "plugged_share": 1.0, "setup": {"batch": 1, "seq": 64}},
        {"name": "slow", "profile": "jetson-orin-nano-8gb", "count": 2,
         "plugged_share": 1.0, "setup": {"batch": 1, "seq": 64},
         "spread": {"speed": {"dist": "uniform", "low": 0.01, "high": 0.011}}}]})
    mine, out = _run(tmp_path, "run", "--workers", "1", scenario=scenario,
                     config="min-nodes=6 num-shares=6 num-server-rounds=1 timeout=5.0")
    assert mine["stages"] == [[6, 6, 4, 4]]
    sessions = _rows(out, "client_sessions.csv")
    slow = {int(s["client"]) for s in sessions if s["group"] == "slow"}
    fast = sorted({int(s["client"]) for s in sessions} - slow)
    assert len(slow) == 2 and {s["status"] for s in sessions if s["kind"] == "train" and
                               int(s["client"]) in slow} == {"deadline"}
    assert mine["arrays"][0][0] == pytest.approx(sum(fast) / len(fast) / 100, rel=0.02)


@pytest.mark.ray
def test_secagg_plus_on_ray_and_under_flowers_own_simulation_agree(tmp_path: Path) -> None:
    """The same app on a Ray cluster, and under `flwr.simulation.run_simulation` with
    the same four nodes: the same stage counts and the same aggregate."""
    pytest.importorskip("ray", reason="Flower's simulation engine runs on Ray")
    mine, _ = _run(tmp_path, "one", "--workers", "1")
    on_ray, _ = _run(tmp_path, "ray", "--ray", "auto")
    assert on_ray == mine
    theirs = tmp_path / "theirs.json"
    under_flowers_own_simulation(APP, "SECAGG_APP_OUT", theirs)
    flowers = json.loads(theirs.read_text())
    assert flowers["stages"] == mine["stages"]
    assert flowers["arrays"] == mine["arrays"]


def test_the_shipped_app_runs_fedavg_through_secagg_plus(tmp_path: Path) -> None:
    """scenarios/apps/edge_lora with `secagg=true`: FedAvg's rounds go through Flower's
    SecAgg+ workflow, the training stage with real LoRA training behind `secaggplus_mod`,
    and each stage hears from every sampled board."""
    pytest.importorskip("peft", reason="the shipped app trains with PEFT")
    shipped = Path(__file__).resolve().parents[1] / "scenarios" / "apps" / "edge_lora"
    path = numbers_scenario(tmp_path, fleet={"clients": 8, "groups": [
        {"name": "boards", "profile": "jetson-orin-nano-8gb", "share": 1.0,
         "plugged_share": 1.0, "setup": {"batch": 1, "seq": 64}}]})
    out = tmp_path / "run"
    assert main(["simulate", str(path), "--app", str(shipped), "--out", str(out), "--quiet",
                 "--no-plots", "--workers", "1", "--run-config",
                 "secagg=true num-server-rounds=1 fraction-train=0.5 min-train-nodes=4 "
                 "local-steps=2 eval-windows=4 secagg-shares=3 secagg-threshold=2"]) == 0
    rounds = _rows(out, "rounds.csv")
    assert [r["stage"] for r in rounds] == STAGES
    assert [int(r["reported"]) for r in rounds] == [4, 4, 4, 4]
    masked = rounds[2]  # the masked adapters come back as int64: twice the float32 bytes
    assert 1.9 < float(masked["upload_bytes"]) / float(masked["download_bytes"]) < 2.1
