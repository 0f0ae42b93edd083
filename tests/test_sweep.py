"""`edgetwin sweep`: settings from a grid and seeds, run folders as `edgetwin simulate`
writes them, the same bytes on every executor, sweep.csv and sweep.md with intervals,
`--compare`, a failed run recorded, and bad input in one line."""

from __future__ import annotations

import csv
import math
import shutil
import socket
import time
from pathlib import Path

import pytest
import yaml

from edgetwin.cli import main
from edgetwin.emulator.sweep.metrics import SUMMARY_NUMBERS
from edgetwin.emulator.sweep.results import SettingResult
from edgetwin.emulator.sweep.stats import difference, estimate
from tests.cli_runs import Done, edgetwin

from .emulator_helpers import numbers_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "thousand_clients.yaml"
# the README's sweep (3 policies x 2 over-commitments), shortened to 20 rounds and 2 seeds
GRID = ["--grid", "selection.policy=random,deadline_aware,oort",
        "--grid", "orchestration.overcommit=0.2,0.5"]
SHORT = ["--set", "stop.rounds=20", "--seeds", "2"]
APP = ROOT / "tests" / "flower_apps" / "numbers"


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of a sweep's run folders but run.json (wall time and host)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "run.json"}


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "sweep.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def pool_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "pool"
    assert main(["sweep", str(SCENARIO), *GRID, *SHORT, "--workers", "2", "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_sweep_csv_has_a_row_per_run_and_a_column_per_key(pool_sweep: Path) -> None:
    rows = _rows(pool_sweep)
    assert len(rows) == 3 * 2 * 2
    head = list(rows[0])
    assert head[:3] == ["selection.policy", "orchestration.overcommit", "seed"]
    assert head[3:8] == ["rounds_per_hour", "time_to_round_20_s", "energy_j_per_round",
                         "traffic_bytes_per_round", "completed_share"]
    assert head[-5:] == ["stop_reason", "status", "error", "setting", "run"]
    assert set(SUMMARY_NUMBERS) <= set(head)  # every number of summary.json
    assert {"groups.laptops.energy_j", "groups.laptops.update_share",
            "failures.deadline"} <= set(head)
    assert [(r["selection.policy"], r["orchestration.overcommit"], r["seed"]) for r in rows[:4]] \
        == [("random", "0.2", "7"), ("random", "0.2", "8"), ("random", "0.5", "7"),
            ("random", "0.5", "8")]
    assert {r["status"] for r in rows} == {"ok"}
    assert len({r["run"] for r in rows}) == 12
    for r in rows:  # the derived metrics follow from the run's own summary
        s = yaml.safe_load((pool_sweep / r["run"] / "summary.json").read_text())
        assert float(r["rounds_per_hour"]) == pytest.approx(
            s["rounds_completed"] / s["virtual_time_s"] * 3600, rel=1e-9)
        assert float(r["energy_j_per_round"]) == pytest.approx(
            s["energy_j_in_rounds"] / s["rounds_completed"], rel=1e-9)
        shares = [float(r[f"groups.{g}.update_share"]) for g in s["groups"]]
        assert sum(shares) == pytest.approx(1.0)


def test_a_run_folder_is_what_edgetwin_simulate_writes(pool_sweep: Path,
                                                       tmp_path: Path) -> None:
    run = pool_sweep / _rows(pool_sweep)[5]["run"]
    again = tmp_path / "again"
    assert main(["simulate", str(run / "scenario.resolved.yaml"), "--out", str(again),
                 "--no-plots", "--quiet"]) == 0
    assert _files(run) == _files(again)


@pytest.mark.ray
def test_ray_writes_the_same_bytes(pool_sweep: Path, tmp_path: Path) -> None:
    """On a local Ray instance the tests start (`--ray auto`), the run folders come back
    as bytes from the tasks: the same files, and the same sweep.csv."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    out = tmp_path / "ray"
    assert main(["sweep", str(SCENARIO), *GRID, *SHORT, "--ray", "auto", "--out", str(out),
                 "--quiet"]) == 0
    assert (out / "sweep.csv").read_bytes() == (pool_sweep / "sweep.csv").read_bytes()
    assert _files(out / "runs") == _files(pool_sweep / "runs")
    assert len(list((out / "runs").iterdir())) == 12


def test_one_process_writes_the_same_bytes_in_any_order(pool_sweep: Path,
                                                         tmp_path: Path) -> None:
    """Seeds listed the other way round, in this process: the same runs, ids and bytes."""
    out = tmp_path / "one"
    assert main(["sweep", str(SCENARIO), *GRID, "--set", "stop.rounds=20", "--seeds", "8,7",
                 "--workers", "1", "--out", str(out), "--quiet"]) == 0
    assert _files(out / "runs") == _files(pool_sweep / "runs")
    rows = {(r["setting"], r["seed"]): r for r in _rows(pool_sweep)}
    for r in _rows(out):
        assert r == rows[(r["setting"], r["seed"])]


def test_sweep_md_gives_intervals_and_the_best_setting(pool_sweep: Path) -> None:
    text = (pool_sweep / "sweep.md").read_text()
    assert "6 settings x 2 seeds (seeds 7, 8) = 12 runs" in text
    assert "| 3 | deadline_aware | 0.2 | 2 |" in text
    assert "rounds per hour, higher is better: **#" in text
    assert "## Participation per group" in text
    for key in ("selection.policy", "orchestration.overcommit"):
        assert f"![sweep_{key}.png](sweep_{key}.png)" in text
        assert (pool_sweep / f"sweep_{key}.png").stat().st_size > 10_000
    # each setting's curves over virtual time, with their band over seeds
    assert "![sweep_over_time.png](sweep_over_time.png)" in text
    assert (pool_sweep / "sweep_over_time.png").stat().st_size > 10_000


def test_rerun_keeps_every_finished_run(pool_sweep: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in (pool_sweep / "runs").iterdir()}
    assert main(["sweep", str(SCENARIO), *GRID, *SHORT, "--out", str(pool_sweep)]) == 0
    assert "0 ran now (nothing to run)" in capsys.readouterr().out
    assert "None ran now, 12 were kept from before, 0 failed." in \
        (pool_sweep / "sweep.md").read_text()
    assert {p.name: p.stat().st_mtime_ns for p in (pool_sweep / "runs").iterdir()} == before


def test_compare_prints_the_paired_difference(pool_sweep: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(pool_sweep), "--compare", "selection.policy=random,"
                 "orchestration.overcommit=0.2", "3"]) == 0
    out = capsys.readouterr().out
    assert "B #3 (selection.policy=deadline_aware, orchestration.overcommit=0.2) minus A #1" \
        in out
    assert "rounds per hour" in out and "95 % intervals of the differences paired by seed" in out
    rows = _rows(pool_sweep)
    a = {int(r["seed"]): float(r["rounds_per_hour"]) for r in rows if r["setting"] == "1"}
    b = {int(r["seed"]): float(r["rounds_per_hour"]) for r in rows if r["setting"] == "3"}
    d = difference(a, b)
    assert d.paired and d.diff.mean == pytest.approx(sum(b.values()) / 2 - sum(a.values()) / 2)
    assert f"{d.diff.mean:,.1f}" in out


def test_interval_is_students_t() -> None:
    e = estimate([1.0, 2.0, 3.0, 4.0])
    assert e.mean == 2.5
    assert e.half_width == pytest.approx(3.182446305 * math.sqrt(5 / 3) / 2)
    assert math.isnan(estimate([1.0]).half_width)
    paired = difference({1: 10.0, 2: 20.0, 3: 30.0}, {1: 11.0, 2: 21.5, 3: 30.5})
    assert paired.paired and paired.diff.mean == pytest.approx(1.0)
    welch = difference({1: 10.0, 2: 20.0}, {3: 11.0, 4: 21.0})
    assert not welch.paired and welch.diff.mean == pytest.approx(1.0)


def test_app_sweep_records_a_failed_run_and_goes_on(tmp_path: Path) -> None:
    """A Flower app swept over its run config: a width the ServerApp cannot build fails
    with its error line in sweep.csv and sweep.md; the other setting's runs finish."""
    pytest.importorskip("flwr", reason="the flower extra is not installed")
    scenario = numbers_scenario(tmp_path)
    out = tmp_path / "sweep"
    code = main(["sweep", str(scenario), "--app", str(APP), "--grid", "app.width=10,-1",
                 "--run-config", "num-server-rounds=2", "--seeds", "2", "--workers", "2",
                 "--out", str(out), "--quiet"])
    assert code == 1  # some runs failed
    rows = _rows(out)
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]
    assert all("negative dimensions" in r["error"] for r in rows[2:])
    assert float(rows[0]["rounds_completed"]) == 2
    assert "## Failed runs" in (out / "sweep.md").read_text()
    assert not (out / rows[2]["run"]).exists()


def _cli(*args: str) -> Done:
    return edgetwin("sweep", *args, cwd=ROOT)


@pytest.mark.parametrize(("args", "message"), [
    (["--grid", "selection.polcy=random,oort"],
     "edgetwin: error: --grid: selection.polcy: unknown key (expected one of: policy"),
    (["--grid", "orchestration.overcommit=0.2,lots"],
     "edgetwin: error: --grid: orchestration.overcommit: lots: expected a number, got 'lots'"),
    (["--grid", "selection.policy=random,fastest"],
     "edgetwin: error: --grid: selection.policy: fastest: unknown policy 'fastest'"),
    (["--grid", "fleet.groups.9.share=0.5"],
     "edgetwin: error: --grid: fleet.groups.9.share: '9' is not an index of fleet.groups"),
    (["--grid", "selection.policy"], "edgetwin: error: --grid: selection.policy: expected "
     "KEY=V1,V2,..."),
    (["--grid", "app.lr=0.1,0.2"], "edgetwin: error: --grid: app.lr: sweeps a Flower app's "
     "run config: give --app DIR"),
    (["--grid", "selection.policy=random,oort", "--seeds", "1:30"],
     "edgetwin: error: --seeds: 1:30: expected a count, or seeds as whole numbers"),
    (["--grid", "selection.policy=random,oort", "--seeds", "0"],
     "edgetwin: error: --seeds: 0: a number of seeds is at least 1"),
    (["--grid", "selection.policy=random,oort", "--metric", "rounds_per_day"],
     "edgetwin: error: --metric: rounds_per_day: not a metric of the runs"),
    (["--grid", "seed=1,2"], "edgetwin: error: --grid: seed: seeds are not a grid key"),
    (["--grid", "orchestration.deadline_s=1800,1800.0"],
     "edgetwin: error: --grid: grid: the settings orchestration.deadline_s=1800 and "
     "orchestration.deadline_s=1800.0 give the same scenario"),
])
def test_bad_grid_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    done = _cli(str(SCENARIO), *args, "--out", str(tmp_path / "x"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()


def test_unreachable_ray_address_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    done = _cli(str(SCENARIO), *GRID, "--ray", f"127.0.0.1:{port}", "--out", str(tmp_path / "x"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"edgetwin: error: --ray: 127.0.0.1:{port}: no Ray cluster "
                                  f"answers at 127.0.0.1:{port}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert time.monotonic() - t0 < 60


def test_sweep_file_runs_like_the_flags(pool_sweep: Path, tmp_path: Path) -> None:
    """A sweep file with the same scenario, grid and seeds gives the same sweep.csv; a
    wrong key in it is named with the file."""
    shutil.copy(SCENARIO, tmp_path / "fleet.yaml")
    sweep = tmp_path / "policies.yaml"
    sweep.write_text(yaml.safe_dump({
        "scenario": "fleet.yaml", "set": {"stop.rounds": 20}, "seeds": [7, 8],
        "grid": {"selection.policy": ["random", "deadline_aware", "oort"],
                 "orchestration.overcommit": [0.2, 0.5]}, "out": "out"}, sort_keys=False))
    assert main(["sweep", str(sweep), "--quiet"]) == 0
    assert (tmp_path / "out" / "sweep.csv").read_bytes() == \
        (pool_sweep / "sweep.csv").read_bytes()
    sweep.write_text("scenario: fleet.yaml\ngrid: {selection.policy: [random]}\nseed: 3\n")
    done = _cli(str(sweep))
    assert done.returncode == 2
    assert done.stderr.strip() == f"edgetwin: error: {sweep}: seed: unknown key (expected one " \
        "of: scenario, grid, seeds, set, metrics, target_rounds, out, app, run_config, name)"


def _setting(index: int, times: dict[int, float], seeds: int = 3) -> SettingResult:
    """A setting whose `seeds` finished runs reached the target in `times` (seed -> h)."""
    r = SettingResult(index, {"selection.policy": f"p{index}"}, runs=seeds)
    r.by_seed["time_to_round_100_s"] = {s: times.get(s, math.nan) for s in range(seeds)}
    return r


def test_a_setting_whose_seeds_mostly_missed_the_target_is_not_named_best() -> None:
    """Oort reached 100 rounds in 1 of 3 seeds, faster there than random in 3 of 3:
    random is best. With no setting reaching it in most seeds, none is named, and the
    line says how many seeds each reached it in; the cells say it too."""
    from edgetwin.emulator.sweep.report import cell
    from edgetwin.emulator.sweep.results import best, no_best_reason

    metric = "time_to_round_100_s"
    oort, rand = _setting(1, {0: 1000.0}), _setting(2, {0: 3000.0, 1: 3100.0, 2: 2900.0})
    b = best([oort, rand], metric)
    assert b is not None and b.setting is rand
    assert cell(oort, metric).endswith("(1 of 3 seeds)") and "seeds" not in cell(rand, metric)
    two_of_three = _setting(3, {0: 500.0, 1: 600.0})
    b = best([oort, two_of_three], metric)  # a majority, over the seeds that have one
    assert b is not None and b.setting is two_of_three
    assert best([oort, _setting(4, {})], metric) is None
    assert no_best_reason([oort, _setting(4, {})], metric) == (
        "no setting has a value in most of its seeds (#1 1 of 3, #4 0 of 3)")
