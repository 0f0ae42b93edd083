"""docs/outputs.md names every column of both CSVs and every field of summary.json, so
the reference cannot drift from what a run writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from edgetwin.emulator.output.simulate import simulate
from edgetwin.emulator.scenario import load_scenario
from edgetwin.emulator.session import STATUSES

from .emulator_helpers import SCENARIOS

DOC = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"
NAMED_BY_DATA = {"groups", "profiles_sha256"}  # maps keyed by the scenario's names


def _keys(data: dict[str, Any]) -> set[str]:
    """Every key of summary.json, top level and nested; under `groups` the keys of each
    group's totals (its name is the scenario's), and not the profiles' names."""
    out = set(data)
    for key, value in data.items():
        if key == "groups":
            for group in value.values():
                out |= _keys(group)
        elif isinstance(value, dict) and key not in NAMED_BY_DATA:
            out |= _keys(value)
    return out


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_output_column_and_field_is_documented(tmp_path: Path, mode: str) -> None:
    scenario = load_scenario(SCENARIOS / "quickstart.yaml", [
        f"orchestration.mode={mode}", "stop.rounds=4",
        "orchestration.async={buffer_size: 3, concurrency: 8, max_staleness: 1}"])
    out = simulate(scenario, tmp_path / mode, plots=False).folder
    text = DOC.read_text()
    names = set()
    for name in ("rounds.csv", "client_sessions.csv"):
        with (out / name).open() as fh:
            names |= set(next(csv.reader(fh)))
    names |= _keys(json.loads((out / "summary.json").read_text()))
    names |= set(STATUSES)
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert not missing, f"not in docs/outputs.md: {missing}"
