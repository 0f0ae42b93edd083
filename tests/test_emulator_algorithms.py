"""What each federated algorithm changes about the sessions of a run."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from edgetwin.emulator.session import COMPLETED

from .emulator_helpers import SCENARIOS, run, small_scenario
from .processes import start_interruptible, wait_for_line

ALWAYS_ON = {"mean_session_s": None, "online_fraction": 1.0}
ROUND = {"clients_per_round": 8, "deadline_s": 10_000}


def _run(**workload: object) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    r = run(small_scenario(workload={"model": "gpt2", "lora_targets": ["c_attn"], **workload},
                           availability=ALWAYS_ON, orchestration=ROUND,
                           battery={"initial_pct": 100}, stop={"rounds": 2}))
    return r.sessions


def test_fedavg_sends_the_adapters_both_ways() -> None:
    s = _run()
    done = s["status"] == COMPLETED
    lora_bytes = 12 * 8 * (768 + 3 * 768) * 4  # r8 on c_attn, fp32, raw
    assert np.all(s["upload_bytes"][done] == lora_bytes)
    assert np.all(s["download_bytes"] == lora_bytes)


def test_fedprox_costs_more_compute_than_fedavg() -> None:
    assert np.all(_run(algorithm="fedprox", fedprox_mu=0.1)["compute_s"]
                  > _run()["compute_s"])


def test_local_only_moves_no_bytes() -> None:
    s = _run(algorithm="local_only")
    assert s["upload_bytes"].sum() == 0 and s["download_bytes"].sum() == 0
    assert np.all(s["steps"] == 3)


def test_flexlora_ranks_per_group_set_each_clients_payload() -> None:
    data = small_scenario(workload={"model": "gpt2", "lora_targets": ["c_attn"],
                                    "algorithm": "flexlora", "lora_rank": 8},
                          availability=ALWAYS_ON, orchestration={**ROUND,
                                                                 "clients_per_round": 40},
                          stop={"rounds": 1}, battery={"initial_pct": 100})
    data["fleet"]["groups"][0]["lora_rank"] = 4
    data["fleet"]["groups"][1]["lora_rank"] = {"dist": "choice", "values": [16, 32]}
    r = run(data)
    s = r.sessions
    per_rank = 12 * (768 + 3 * 768) * 4
    ranks = s["download_bytes"] / per_rank
    assert set(np.unique(ranks[s["group"] == 0])) == {4}
    assert set(np.unique(ranks[s["group"] == 1])) == {16, 32}


def test_splitlora_ships_activations_every_step_and_trains_a_prefix() -> None:
    split = _run(algorithm="splitlora", split_layer=3)
    whole = _run()
    assert np.all(split["download_bytes"] == whole["download_bytes"] * 3 // 12)
    # the per-step activation traffic and server layers are in the step time
    assert np.all(split["compute_s"] > 0)


def test_interrupted_simulation_keeps_what_it_simulated(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = start_interruptible(
        [sys.executable, "-m", "edgetwin.cli", "simulate", str(SCENARIOS / "thousand_clients.yaml"),
         "--out", str(out), "--no-plots", "--set", "stop.rounds=100000",
         "--set", "fleet.clients=20000", "--set", "orchestration.clients_per_round=500"])
    assert proc.stderr is not None
    # rounds are being simulated once the first progress line is out
    first = wait_for_line(proc.stderr, "round ", timeout_s=60)
    assert "thousand-clients: round" in first
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "interrupted" and summary["client_sessions"] > 0
    rows = (out / "client_sessions.csv").read_text().splitlines()
    assert len(rows) == summary["client_sessions"] + 1


@pytest.mark.parametrize("policy", ["random", "deadline_aware", "battery_aware", "oort",
                                    "power_of_choice"])
def test_each_policy_picks_distinct_idle_clients(policy: str) -> None:
    r = run(small_scenario(selection={"policy": policy}, availability=ALWAYS_ON,
                           orchestration={"clients_per_round": 6, "deadline_s": 600,
                                          "overcommit": 0.5}, stop={"rounds": 5}))
    for rnd in range(5):
        chosen = r.sessions["client"][r.sessions["round"] == rnd]
        assert len(chosen) == len(np.unique(chosen)) == 9


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_splitlora_at_layer_0_ships_the_embedding_output(kind: str) -> None:
    """EdgeFlowerTune's SplitLoRA: the client runs the embedding only and uploads its
    output every micro-batch; with LoRA it trains nothing, so nothing comes back."""
    from edgetwin.profiles.method import Method
    from edgetwin.profiles.models import load_model
    from edgetwin.profiles.training_setup import TrainingSetup
    from edgetwin.profiles.workload import build_workload

    model = load_model("gemma-3-270m")
    w = build_workload(model, Method(kind=kind, split_layer=0,
                                     lora_targets=("q_proj", "k_proj", "v_proj", "o_proj")),
                       TrainingSetup(batch=8, seq=256, grad_accum=2))
    up = 8 * 256 * 640 * 4 * 2  # batch x seq x hidden x fp32, two micro-batches
    assert w.step_upload_bytes == up
    if kind == "lora":
        assert w.step_download_bytes == 0 and w.trainable_params == 0
        assert w.payload.upload_bytes == 0
    else:  # the embedding table trains on the client: its gradient comes back
        assert w.step_download_bytes == up
        assert w.trainable_params == model.vocab * model.hidden
    assert w.memory.weights_bytes == model.vocab * model.hidden * 4  # the table, no layers
