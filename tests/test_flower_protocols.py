"""EdgeFlowerTune's protocols: the arithmetic on runs, and the command end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from edgetwin.cli import main
from edgetwin.common.errors import InputError
from edgetwin.emulator.flower.protocols import (
    Metric,
    Point,
    cost_to_target,
    parse_budget,
    quality_under_budget,
)

from .emulator_helpers import numbers_scenario
from .test_flower_grid import APP


def _points(*qualities: float) -> list[Point]:
    return [Point(i + 1, q, 100.0 * (i + 1), 10.0 * (i + 1), 1e6 * (i + 1))
            for i, q in enumerate(qualities)]


def test_quality_under_budget_takes_the_best_within_it() -> None:
    ppl = Metric.parse("server_perplexity")
    points = _points(90.0, 70.0, 75.0, 40.0)
    assert ppl.lower_is_better
    assert quality_under_budget(points, ppl, "time", 300.0) == points[1]  # 70 beats 75
    assert quality_under_budget(points, ppl, "energy", 5.0) is None  # nothing that cheap
    acc = Metric.parse("server_accuracy")
    assert not acc.lower_is_better
    assert quality_under_budget(points, acc, "traffic", 3e6) == points[0]


def test_cost_to_target_is_the_first_round_that_reaches_it() -> None:
    points = _points(90.0, 70.0, 75.0, 40.0)
    hit = cost_to_target(points, Metric.parse("server_perplexity"), 72.0)
    assert hit == points[1] and hit.energy_j == 20.0
    assert cost_to_target(points, Metric.parse("server_perplexity"), 10.0) is None
    assert cost_to_target(points, Metric.parse("x:max"), 80.0) == points[0]


def test_bad_budgets_and_metrics_are_refused() -> None:
    assert parse_budget("energy_j=5e5") == ("energy", 5e5)
    for bad in ("joules=5", "time_s=soon", "traffic_bytes=-1"):
        with pytest.raises(InputError, match="--budget"):
            parse_budget(bad)
    with pytest.raises(InputError, match="min or max"):
        Metric.parse("loss:lowest")


def test_robustness_runs_each_method_under_each_perturbation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "protocol"
    code = main(["protocol", "robustness", str(numbers_scenario(tmp_path)), "--app", str(APP),
                 "--methods", "fedavg", "--metric", "train_partition-id:min",
                 "--perturbations", "bandwidth,churn", "--workers", "1", "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader((out / "robustness.csv").open()))
    assert [r["perturbation"] for r in rows] == ["none", "bandwidth", "churn"]
    none, bandwidth, _ = rows
    assert float(none["time_ratio"]) == 1.0
    assert float(bandwidth["time_ratio"]) > 1.0  # a tenth of the bandwidth takes longer
    assert (out / "robustness.png").stat().st_size > 0
    assert "robustness (train_partition-id, lower is better)" in capsys.readouterr().out


def test_each_perturbation_shows_its_effect_and_one_that_changed_nothing_is_flagged(
        tmp_path: Path) -> None:
    """Throttling keeps every device at its full-throttle temperature, so sessions
    throttle; low-battery takes phones off their chargers near the abort line, so
    batteries run out. Over boards on mains, low-battery changes nothing, and the table
    says so rather than report it as robustness."""
    def robustness(name: str, **over: object) -> list[dict[str, str]]:
        out = tmp_path / name
        assert main(["protocol", "robustness", str(numbers_scenario(tmp_path, **over)),
                     "--app", str(APP), "--methods", "fedavg", "--metric",
                     "train_partition-id:min", "--perturbations", "throttling,low-battery",
                     "--workers", "1", "--out", str(out), "--run-config",
                     "num-server-rounds=2 min-nodes=2 fraction-train=0.5"]) == 0
        return list(csv.DictReader((out / "robustness.csv").open()))

    none, hot, low = robustness("boards")
    assert int(none["throttled"]) == 0 < int(hot["throttled"]) == int(hot["sessions"])
    assert hot["changed"] == "yes"
    assert low["changed"] == "nothing: check the perturbation"  # mains power: no battery
    phones = {"clients": 4, "groups": [
        {"name": "phones", "profile": "flagship-phone-sd8gen3", "share": 1.0,
         "plugged_share": 1.0, "setup": {"batch": 4, "seq": 128}}]}
    none, _, low = robustness("phones", fleet=phones,
                              data={"local_steps": 400, "max_local_steps": 400})
    assert int(none["battery"]) == 0 < int(low["battery"])
    assert low["changed"] == "yes"
    # every phone emptied: the app measured nothing, and the row says so
    assert low["final_quality"] == "nan" and int(low["battery"]) == int(low["sessions"])
