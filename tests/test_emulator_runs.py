"""Whole runs: every shipped scenario, the published 8-client run, reproducibility."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml

from tests.cli_runs import Done, edgetwin

from .emulator_helpers import SCENARIOS
from .hil_helpers import with_standin_profiles

SHIPPED = sorted(p.name for p in SCENARIOS.glob("*.yaml"))
OUTPUTS = ("summary.json", "rounds.csv", "client_sessions.csv", "scenario.resolved.yaml",
           "report.md", "run.json", "round_duration.png", "session_time_cdf.png",
           "energy_per_client.png", "failures.png", "timeline.png")


def simulate(scenario: Path, out: Path, *extra: str) -> Done:
    return edgetwin("simulate", str(scenario), "--out", str(out), *extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name in SHIPPED:
        folder = tmp_path_factory.mktemp(name.removesuffix(".yaml"))
        scenario = with_standin_profiles(SCENARIOS / name, tmp_path_factory.mktemp("scenario"))
        done = simulate(scenario, folder)
        assert done.returncode == 0, done.stderr
        out[name] = folder
    return out


def test_the_issue_asks_for_these_scenarios() -> None:
    assert {"quickstart.yaml", "thousand_clients.yaml", "edgeflowertune_8client.yaml"} <= \
        set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_runs_and_writes_its_folder(runs: dict[str, Path],
                                                           name: str) -> None:
    folder = runs[name]
    for f in OUTPUTS:
        assert (folder / f).stat().st_size > 0, f
    summary = json.loads((folder / "summary.json").read_text())
    for key in ("virtual_time_s", "rounds_completed", "client_sessions", "energy_j",
                "upload_bytes", "download_bytes", "failures", "groups"):
        assert key in summary
    assert summary["rounds_completed"] > 0 and summary["client_sessions"] > 0
    resolved = yaml.safe_load((folder / "scenario.resolved.yaml").read_text())
    assert resolved["seed"] == summary["seed"] and resolved["run"]["profiles_sha256"]
    assert "![" in (folder / "report.md").read_text()


@pytest.mark.parametrize("name", SHIPPED)
def test_bytes_and_energy_add_up_between_sessions_rounds_and_summary(runs: dict[str, Path],
                                                                     name: str) -> None:
    folder = runs[name]
    summary = json.loads((folder / "summary.json").read_text())
    rows = list(csv.DictReader((folder / "client_sessions.csv").open()))
    assert len(rows) == summary["client_sessions"]
    up = sum(int(r["upload_bytes"]) for r in rows)
    down = sum(int(r["download_bytes"]) for r in rows)
    assert up == summary["upload_bytes"] and down == summary["download_bytes"]
    assert sum(g["upload_bytes"] for g in summary["groups"].values()) == up
    rounds = list(csv.DictReader((folder / "rounds.csv").open()))
    assert sum(float(r["upload_bytes"]) for r in rounds) == pytest.approx(up)
    energy = sum(float(r["energy_j"]) for r in rows)
    assert energy == pytest.approx(summary["energy_j"], rel=1e-6)


def test_edgeflowertune_8client_reproduces_the_published_run(runs: dict[str, Path]) -> None:
    rows = list(csv.DictReader((runs["edgeflowertune_8client.yaml"] /
                                "client_sessions.csv").open()))
    phones = [r for r in rows if r["group"] == "phones"]
    jetsons = [r for r in rows if r["group"] == "jetsons"]
    assert len(phones) == 500 and len(jetsons) == 300
    assert all(r["status"] == "completed" for r in rows)
    # published: each device's mean round over the run; one round varies around it by the
    # profile's session_cv
    for group, low, high in ((phones, 1700.0, 1745.0), (jetsons, 114.0, 142.0)):
        by_client: dict[str, list[float]] = {}
        for r in group:
            by_client.setdefault(r["client"], []).append(float(r["compute_s"]))
        assert all(low <= statistics.fmean(v) <= high for v in by_client.values())
        assert any(not low <= x <= high for v in by_client.values() for x in v)
    assert {r["upload_bytes"] for r in phones} == {"2960640"}
    assert {r["upload_bytes"] for r in jetsons} == {"2949120"}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    scenario = SCENARIOS / "thousand_clients.yaml"
    args = ("--no-plots", "--set", "stop.rounds=15")
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert simulate(scenario, tmp_path / name, "--seed", seed, *args).returncode == 0
    for f in ("summary.json", "client_sessions.csv", "rounds.csv", "scenario.resolved.yaml"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    for f in ("summary.json", "client_sessions.csv"):
        assert (tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes(), f


def test_a_run_without_a_seed_draws_one_and_records_it(tmp_path: Path) -> None:
    src = yaml.safe_load((SCENARIOS / "quickstart.yaml").read_text())
    del src["seed"]
    path = tmp_path / "noseed.yaml"
    path.write_text(yaml.safe_dump(src))
    assert simulate(path, tmp_path / "out", "--no-plots").returncode == 0
    seed = json.loads((tmp_path / "out" / "summary.json").read_text())["seed"]
    again = simulate(path, tmp_path / "again", "--no-plots", "--seed", str(seed))
    assert again.returncode == 0
    assert (tmp_path / "out" / "client_sessions.csv").read_bytes() == \
        (tmp_path / "again" / "client_sessions.csv").read_bytes()


def test_async_buffered_aggregation_runs(tmp_path: Path) -> None:
    done = simulate(SCENARIOS / "quickstart.yaml", tmp_path / "async", "--no-plots", "--set",
                    "orchestration.mode=async", "--set",
                    "orchestration.async={buffer_size: 5, concurrency: 12, max_staleness: 3}")
    assert done.returncode == 0, done.stderr
    s = json.loads((tmp_path / "async" / "summary.json").read_text())
    assert s["mode"] == "async" and s["rounds_completed"] == 20
    rounds = list(csv.DictReader((tmp_path / "async" / "rounds.csv").open()))
    assert all(int(r["reported"]) == 5 for r in rounds)
    assert all(float(r["mean_staleness"]) <= 3 for r in rounds)
