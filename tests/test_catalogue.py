"""The shipped scenarios, found by name: listed, copied out to edit, simulated by name,
read from the package's data (so that a wheel without the source tree has them)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from edgetwin.emulator import catalogue
from tests.cli_runs import edgetwin

ROOT = Path(__file__).resolve().parents[1]


def test_the_list_is_every_shipped_file_with_a_line_each() -> None:
    done = edgetwin("scenarios", "list")
    assert done.returncode == 0, done.stderr
    rows = [line.split(None, 2) for line in done.stdout.splitlines()]
    names = {(r[0], r[1]) for r in rows}
    scenarios = {(p.stem, "scenario") for p in (ROOT / "scenarios").glob("*.yaml")}
    assert scenarios <= names and ("apps/edge_lora", "app") in names
    assert ("devices/hil_local", "devices") in names
    assert all(len(r) == 3 and r[2].strip() for r in rows), rows  # each says what it is
    # read through the package's resources, not a path into the clone
    assert catalogue.root().resolve() == (ROOT / "scenarios").resolve()


def test_a_copy_is_editable_and_runs_where_it_was_written(tmp_path: Path) -> None:
    done = edgetwin("scenarios", "copy", "hil_local", str(tmp_path / "mine"))
    assert done.returncode == 0, done.stderr
    copy = tmp_path / "mine" / "hil_local.yaml"
    assert copy.read_bytes() == (ROOT / "scenarios" / "hil_local.yaml").read_bytes()
    model = tmp_path / "mine" / "models" / "desk-llama" / "config.json"
    assert json.loads(model.read_text())["model_type"] == "llama"  # what it names, beside it
    again = edgetwin("scenarios", "copy", "hil_local", str(tmp_path / "mine"))
    assert again.returncode == 2 and again.stderr.strip() == (
        f"edgetwin: error: {copy}: already exists: copy into another folder")
    quick = edgetwin("scenarios", "copy", "quickstart", cwd=tmp_path)  # default: here
    assert quick.returncode == 0 and (tmp_path / "quickstart.yaml").is_file()
    edited = yaml.safe_load((tmp_path / "quickstart.yaml").read_text())
    edited["stop"]["rounds"] = 2
    (tmp_path / "quickstart.yaml").write_text(yaml.safe_dump(edited))
    run = edgetwin("simulate", "quickstart.yaml", "--out", "run", "--quiet", "--no-plots",
                   cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["rounds_completed"] == 2


def test_simulate_runs_a_shipped_scenario_by_name(tmp_path: Path) -> None:
    by_name = edgetwin("simulate", "quickstart", "--out", str(tmp_path / "a"), "--quiet",
                       "--no-plots", "--set", "stop.rounds=2")
    by_path = edgetwin("simulate", str(ROOT / "scenarios" / "quickstart.yaml"), "--out",
                       str(tmp_path / "b"), "--quiet", "--no-plots", "--set", "stop.rounds=2")
    assert by_name.returncode == by_path.returncode == 0, by_name.stderr + by_path.stderr
    for name in ("rounds.csv", "client_sessions.csv"):  # the same scenario, the same run
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_name_that_is_neither_a_file_nor_shipped_is_one_line(tmp_path: Path) -> None:
    done = edgetwin("simulate", "thousand_client", "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("edgetwin: error: thousand_client: no such file, and not a shipped "
                           "scenario (shipped: edgeflowertune_8client, hil_local, quickstart, "
                           "thousand_clients")
    app = edgetwin("simulate", "apps/edge_lora", "--out", str(tmp_path / "x"))
    assert app.returncode == 2 and "apps/edge_lora" in app.stderr
    assert not (tmp_path / "x").exists()
