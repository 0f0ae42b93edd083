"""Wrong input is refused in one line naming the key, never silently absorbed; what the
loader fills in depends on what the user gave (stop rules, steps, churn over a trace)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edgetwin.cli import main
from edgetwin.common.errors import InputError
from edgetwin.emulator.availability import Trace
from edgetwin.emulator.engine import Engine
from edgetwin.emulator.network import BandwidthTrace
from edgetwin.emulator.scenario import load_scenario

from .emulator_helpers import SCENARIOS, small_scenario

Edit = Callable[[dict[str, Any]], None]


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, Any],
             *extra: str) -> str:
    """The CLI's one line for a scenario that must be refused (exit 2, nothing written)."""
    path = _write(tmp_path, data)
    out = tmp_path / "out"
    code = main(["simulate", str(path), "--out", str(out), "--quiet", "--no-plots", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and not out.exists()
    assert err[0].startswith(f"edgetwin: error: {path}: ") or "--set" in err[0]
    return err[0]


def _set(path: str, value: Any) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        *head, last = path.split(".")
        node: Any = d
        for part in head:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[last] = value
    return edit


def test_duplicate_group_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = small_scenario()
    d["fleet"]["groups"][1]["name"] = d["fleet"]["groups"][0]["name"]
    line = _refused(tmp_path, capsys, d)
    assert "fleet.groups[1].name: 'phones' is already the name of fleet.groups[0]" in line


# every place a distribution occurs, with a field of another kind and a missing field
DIST_KEYS = ["fleet.groups.0.network.uplink_mbps", "fleet.groups.1.spread.speed",
             "fleet.groups.0.lora_rank", "data.examples_per_client", "battery.initial_pct",
             "availability.plug_start_h", "availability.diurnal.window_length_h"]


@pytest.mark.parametrize("key", DIST_KEYS)
def test_distribution_fields_of_another_kind(tmp_path: Path, key: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    d = small_scenario()
    _set(key, {"dist": "lognormal", "mean": 50, "std": 0.7})(d)
    line = _refused(tmp_path, capsys, d)
    shown = key.replace(".0.", "[0].").replace(".1.", "[1].")
    assert f"{shown}.std: not a key of this kind (it takes mean, cv, dist, low, high)" in line


@pytest.mark.parametrize("key", DIST_KEYS[:3])
def test_distribution_missing_field(tmp_path: Path, key: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    d = small_scenario()
    _set(key, {"dist": "uniform", "low": 1})(d)
    assert ".high: missing required key" in _refused(tmp_path, capsys, d)


@pytest.mark.parametrize("key", ["availability.diurnal.timezones_h", "data.examples_per_client",
                                 "fleet.groups.0.lora_rank"])
def test_choice_weights_of_another_length(tmp_path: Path, key: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    d = small_scenario()
    _set(key, {"dist": "choice", "values": [4, 8, 16], "weights": [0.5, 0.5]})(d)
    line = _refused(tmp_path, capsys, d)
    assert ".weights: 2 weights for 3 values: give one weight per value" in line


def test_numbers_in_exponent_form(tmp_path: Path) -> None:
    d = small_scenario()
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(d).replace("rounds: 4", "rounds: 4\n  traffic_bytes: 5e6")
                    .replace("deadline_s: 120", "deadline_s: 1.2E+2"))
    s = load_scenario(path, ["stop.energy_j=2.5e5", "fleet.clients=4e1"])
    assert s.stop.traffic_bytes == 5e6 and s.orchestration.deadline_s == 120.0
    assert s.stop.energy_j == 2.5e5 and s.fleet.clients == 40


def test_set_index_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", str(SCENARIOS / "quickstart.yaml"), "--quiet",
                 "--set", "fleet.groups.5.share=0.1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == ("edgetwin: error: --set: fleet.groups.5.share: '5' is not an index of "
                   "fleet.groups (2 items: 0 to 1)")


def test_sequence_beyond_the_model_positions(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    d = small_scenario()
    d["fleet"]["groups"][1]["setup"]["seq"] = 4096
    line = _refused(tmp_path, capsys, d)
    assert "fleet.groups[1].setup.seq: 4096 is beyond the 1024 positions of gpt2" in line


def test_steps_and_epochs_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = small_scenario(data__local_epochs=1.0)
    line = _refused(tmp_path, capsys, d)
    assert "data.local_epochs: give local_steps or local_epochs, not both" in line


def test_explicit_steps_above_the_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _refused(tmp_path, capsys, small_scenario(data__local_steps=4000))
    assert "data.local_steps: 4000 is above data.max_local_steps (200)" in line


def test_keys_of_the_other_mode_warn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = small_scenario(orchestration__mode="async", selection__oort={"alpha": 3.0})
    path = _write(tmp_path, d)
    code = main(["simulate", str(path), "--out", str(tmp_path / "run"), "--no-plots"])
    err = capsys.readouterr().err
    assert code == 0
    lines = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert lines == [
        "warning: orchestration.clients_per_round: applies to synchronous rounds "
        "only; orchestration.mode is async, so it is ignored",
        "warning: selection.oort: parameters of the oort policy; selection.policy "
        "is random, so they are ignored"]
    report = (tmp_path / "run" / "report.md").read_text()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for ln in lines:
        assert ln.removeprefix("warning: ") in report
        assert ln.removeprefix("warning: ") in summary["warnings"]
    sync = _write(tmp_path, small_scenario(orchestration__async={"buffer_size": 4}))
    code = main(["simulate", str(sync), "--out", str(tmp_path / "sync"), "--no-plots"])
    line = ("orchestration.async: applies to asynchronous aggregation only; "
            "orchestration.mode is sync, so it is ignored")
    assert code == 0 and f"warning: {line}" in capsys.readouterr().err.splitlines()
    assert line in (tmp_path / "sync" / "report.md").read_text()


def test_keys_of_another_algorithm_warn(tmp_path: Path) -> None:
    d = small_scenario(workload__fedprox_mu=0.1)
    d["fleet"]["groups"][0]["lora_rank"] = {"dist": "choice", "values": [4, 8]}
    assert load_scenario(_write(tmp_path, d)).warnings == (
        "workload.fedprox_mu: applies to fedprox; workload.algorithm is fedavg, so it is "
        "ignored",
        "fleet.groups[0].lora_rank: a group's own ranks apply to flexlora; "
        "workload.algorithm is fedavg, so it is ignored")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("server.aggregate_mb_per_s", 0, "server.aggregate_mb_per_s: must be > 0"),
    ("seed", -1, "seed: must be >= 0"),
    ("fleet.groups.0.spread.speed", -1, "fleet.groups[0].spread.speed: must be > 0"),
    ("fleet.groups.0.spread.background_load", 1.5,
     "fleet.groups[0].spread.background_load: must stay in [0, 1)"),
    ("fleet.groups.0.setup.shard_budget_mb", -5,
     "fleet.groups[0].setup.shard_budget_mb: must be > 0"),
    ("workload.lora_targets", ["nonexistent"],
     "workload.lora_targets: 'nonexistent' matches no module of gpt2"),
    ("workload.lora_alpha", -1, "workload.lora_alpha: must be > 0"),
    ("thermal.initial_c", -300, "thermal.initial_c: must be a device temperature"),
    ("fleet.groups.0.lora_rank", {"dist": "uniform", "low": -4, "high": 2},
     "fleet.groups[0].lora_rank: must be >= 1"),
    ("fleet.groups.0.network.uplink_mbps", {"mean": 3},
     "fleet.groups[0].network.uplink_mbps.dist: missing required key"),
])
def test_out_of_range_values_name_the_users_key(tmp_path: Path, key: str, value: Any,
                                                message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    d = small_scenario()
    _set(key, value)(d)
    line = _refused(tmp_path, capsys, d)
    assert message in line, line


def test_messages_name_the_users_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = small_scenario(orchestration__mode="async", orchestration__async={"bufer_size": 4})
    line = _refused(tmp_path, capsys, d)
    assert "orchestration.async.bufer_size: unknown key (expected one of: buffer_size" in line
    assert "async_" not in line
    code = main(["simulate", str(_write(tmp_path, small_scenario())), "--quiet",
                 "--set", "orchestration.async.bufer_size=4"])
    err = capsys.readouterr().err
    assert code == 2 and "orchestration.async.bufer_size: unknown key" in err
    assert "async_" not in err


def test_lora_targets_as_text(tmp_path: Path) -> None:
    s = load_scenario(_write(tmp_path, small_scenario(workload__lora_targets="all-linear")))
    assert s.workload.lora_targets == ("all-linear",)
    s = load_scenario(_write(tmp_path, small_scenario(workload__lora_targets="c_attn, c_proj")))
    assert s.workload.lora_targets == ("c_attn", "c_proj")


def _without_stop(**stop: float) -> dict[str, Any]:
    d = small_scenario()
    del d["stop"]
    if stop:
        d["stop"] = stop
    return d


def test_stop_on_energy_alone(tmp_path: Path) -> None:
    d = _without_stop(energy_j=20_000.0)
    s = load_scenario(_write(tmp_path, d))
    assert s.stop.rounds is None and s.stop.energy_j == 20_000.0
    r = Engine(s, SCENARIOS, s.seed or 0).run()
    assert r.stop_reason == "energy"
    assert len(r.rounds) > 10  # beyond the rounds a scenario without a rule gets
    assert r.sessions["energy_j"].sum() >= 20_000.0


def test_default_stop_only_without_a_rule(tmp_path: Path) -> None:
    s = load_scenario(_write(tmp_path, _without_stop()))
    assert (s.stop.rounds, s.stop.energy_j, s.stop.virtual_time_s) == (10, None, None)
    assert Engine(s, SCENARIOS, 1).run().stop_reason == "rounds"


def _trace_file(folder: Path) -> Path:
    rows = ["client,start_s,end_s"] + [f"{c},{c * 600},{c * 600 + 7200}" for c in range(5)]
    path = folder / "online.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_availability_trace_alone_is_not_thinned(tmp_path: Path) -> None:
    _trace_file(tmp_path)
    s = load_scenario(_write(tmp_path, small_scenario(availability={"trace": "online.csv"})))
    assert s.availability.mean_session_s is None  # no churn on top of the recorded spells
    engine = Engine(s, tmp_path, 1)
    trace = Trace.load(tmp_path / "online.csv")
    clients = np.arange(40)
    for t_s in np.linspace(0, 10_000, 41):
        emulated = engine.model.availability.online(clients, np.full(40, t_s))
        np.testing.assert_array_equal(emulated, trace.online(clients, np.full(40, t_s)))
    both = small_scenario(availability={"trace": "online.csv", "online_fraction": 0.5})
    assert load_scenario(_write(tmp_path, both)).availability.mean_session_s == 3600.0


def test_network_trace_modes(tmp_path: Path) -> None:
    (tmp_path / "cell.csv").write_text("time_s,downlink_mbps,uplink_mbps\n0,10,2\n60,30,6\n")
    shape = BandwidthTrace.load(tmp_path / "cell.csv")
    absolute = BandwidthTrace.load(tmp_path / "cell.csv", "absolute")
    drawn = np.array([50.0, 50.0, 50.0])
    jittered = drawn * np.array([1.0, 1.1, 0.9])
    t_s = np.array([0.0, 70.0, 130.0])  # piecewise constant, looped every 120 s
    down, up = shape.links(t_s, jittered, jittered / 5, drawn, drawn / 5)
    np.testing.assert_allclose(down, jittered * np.array([0.5, 1.5, 0.5]))
    down, up = absolute.links(t_s, jittered, jittered / 5, drawn, drawn / 5)
    np.testing.assert_allclose(down, [10.0, 33.0, 9.0])
    np.testing.assert_allclose(up, [2.0, 6.6, 1.8])
    d = small_scenario()
    d["fleet"]["groups"][0]["network"] = {"trace": {"file": "cell.csv", "mode": "absolute"}}
    s = load_scenario(_write(tmp_path, d))
    assert s.fleet.groups[0].network.trace is not None
    assert s.fleet.groups[0].network.trace.mode == "absolute"
    d["fleet"]["groups"][0]["network"] = {"trace": {"file": "cell.csv", "mode": "scaled"}}
    with pytest.raises(InputError, match=r"network\.trace\.mode: expected one of shape, absolute"):
        load_scenario(_write(tmp_path, d))
