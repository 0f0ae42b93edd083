"""The Python API (`import edgetwin`): docs/api.md's example runs and prints what the
page shows, and each function gives what the command gives for the same input."""

from __future__ import annotations

import json
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import edgetwin
from edgetwin import api
from edgetwin.calibration.opsuite import base_cases
from edgetwin.calibration.trace import Latency, Measurement, TraceWriter
from edgetwin.cli import main
from edgetwin.common.errors import InputError
from edgetwin.profiles.device import OpCost

from .doc_examples import blocks
from .doc_examples import run as run_examples

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


def test_the_doc_example_runs_and_prints_what_it_shows(tmp_path: Path) -> None:
    """Every `python` block runs in order, from a folder that looks like the repository's
    root; a `text` block right after one is what it prints."""
    found = blocks(DOC)
    printed = run_examples(DOC, tmp_path)
    for i, out in printed:
        assert out == found[i][2], (f"docs/api.md line {found[i][1]}: the block above it now "
                                    f"prints\n{out}")
    assert len(printed) >= 4
    assert (tmp_path / "runs" / "quickstart-random" / "summary.json").is_file()


def test_import_edgetwin_names_the_api_once() -> None:
    for name in edgetwin.__all__:
        assert hasattr(edgetwin, name), name
    assert edgetwin.__version__ == version("edgetwin")
    # one class each, whichever name it is reached by
    assert edgetwin.InputError is InputError
    assert edgetwin.Run is api.Run and edgetwin.simulate is api.simulate
    documented = DOC.read_text()
    missing = [n for n in edgetwin.__all__ if f"`{n}" not in documented]
    assert not missing, f"not in docs/api.md: {missing}"


def test_overrides_as_a_mapping_or_as_set_strings() -> None:
    as_dict = edgetwin.load_scenario(QUICKSTART, {
        "orchestration.deadline_s": 900, "selection.policy": "oort",
        "workload.lora_targets": ("c_attn",), "description": "true"}, seed=5)
    as_set = edgetwin.load_scenario(str(QUICKSTART), [
        "orchestration.deadline_s=900", "selection.policy=oort",
        "workload.lora_targets=[c_attn]", "description='true'"], seed=5)
    assert as_dict == as_set
    assert as_dict.orchestration.deadline_s == 900 and as_dict.seed == 5
    assert as_dict.description == "true"  # a mapping's string stays a string


@pytest.mark.parametrize(("overrides", "key"), [
    ({"orchestration.deadlin_s": 900}, "orchestration.deadlin_s"),
    ({"orchestration.deadline_s": -1}, "orchestration.deadline_s"),
    ({"orchestration.deadline_s": "soon"}, "orchestration.deadline_s"),
    (["stop.rounds"], "stop.rounds"),
    ("stop.rounds=5", "stop.rounds=5"),
])
def test_a_bad_override_names_its_key(overrides: Any, key: str) -> None:
    with pytest.raises(InputError) as err:
        edgetwin.load_scenario(QUICKSTART, overrides)
    assert err.value.key == key


def test_simulate_gives_what_the_command_gives(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cli = tmp_path / "cli"
    assert main(["simulate", str(QUICKSTART), "--out", str(cli), "--set", "stop.rounds=5",
                 "--seed", "3", "--no-plots", "--quiet"]) == 0
    run = edgetwin.simulate(QUICKSTART, tmp_path / "api", overrides={"stop.rounds": 5},
                            seed=3, plots=False)
    assert json.loads(json.dumps(run.summary)) == json.loads((cli / "summary.json").read_text())
    for name in ("client_sessions.csv", "rounds.csv"):
        assert (run.folder / name).read_bytes() == (cli / name).read_bytes()
    assert run.seed == 3 and run.stop_reason == "rounds"
    assert len(run.rounds["round"]) == run.summary["rounds_attempted"] == 5
    assert len(run.sessions["client"]) == run.summary["client_sessions"]
    completed = int(np.sum(run.sessions["status"] == "completed"))
    assert completed == run.summary["completed_sessions"]
    assert run.sessions["energy_j"].sum() == pytest.approx(run.summary["energy_j"], abs=0.1)

    back = edgetwin.load_run(cli)
    assert back.summary == json.loads(json.dumps(run.summary))
    assert back.scenario == run.scenario and back.wall_s > 0
    for name, column in run.sessions.items():
        assert np.array_equal(back.sessions[name], column), name


def test_simulate_keeps_an_earlier_run_unless_told(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its temporary folders here
    scenario = edgetwin.load_scenario(QUICKSTART, {"stop.rounds": 2})
    first = edgetwin.simulate(scenario, tmp_path / "run", plots=False)
    with pytest.raises(InputError, match="overwrite=True") as err:
        edgetwin.simulate(scenario, tmp_path / "run", plots=False)
    assert err.value.key == "out"
    again = edgetwin.simulate(scenario, tmp_path / "run", plots=False, overwrite=True, seed=9)
    assert again.seed == 9 and first.seed == 1
    elsewhere = edgetwin.simulate(scenario, plots=False)  # a new temporary folder
    assert (elsewhere.folder / "summary.json").is_file() and elsewhere.folder != first.folder
    assert elsewhere.folder.parent == tmp_path
    with pytest.raises(InputError, match="load_scenario"):
        edgetwin.simulate(scenario, overrides={"stop.rounds": 3})
    with pytest.raises(InputError, match="not a run folder"):
        edgetwin.load_run(tmp_path)


GEMMA_LORA = {"method": "lora", "lora_rank": 8, "lora_alpha": 32,
              "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj"], "batch": 8, "seq": 64,
              "serialization": "npy"}


def test_price_workload_gives_what_the_command_gives(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workload", "--model", "gemma-3-270m", "--method", "lora", "--lora-rank", "8",
                 "--lora-alpha", "32", "--lora-targets", "q_proj,k_proj,v_proj,o_proj",
                 "--batch", "8", "--seq", "64", "--serialization", "npy",
                 "--device", "hi-nova-9-pro", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    price = edgetwin.price_workload("gemma-3-270m", "hi-nova-9-pro", **GEMMA_LORA)
    assert json.loads(json.dumps(price.as_dict())) == printed
    assert price.upload_bytes == 2_960_640 and price.trainable_params == 737_280
    assert price.step_time_s == printed["devices"][0]["step_time_s"] and price.fits_in_memory
    profile = edgetwin.load_profile("hi-nova-9-pro")
    same = edgetwin.price_workload("gemma-3-270m", profile, **GEMMA_LORA)
    assert same.cost == price.cost


@pytest.mark.parametrize(("model", "device", "options", "where"), [
    ("gpt2", "hi-nova-9-pro", {"lora_rank": 0}, "lora_rank"),
    ("gpt3", "hi-nova-9-pro", {}, "model"),
    ("gpt2", "no-such-phone", {}, "device"),
    ("gpt2", "hi-nova-9-pro", {"lora_targets": ["q_proj"]}, "lora_targets"),
    ("gpt2", "hi-nova-9-pro", {"dtype": "fp8"}, "dtype"),
])
def test_bad_workload_input_names_the_argument(model: str, device: str,
                                               options: dict[str, Any], where: str) -> None:
    with pytest.raises(InputError) as err:
        edgetwin.price_workload(model, device, **options)
    assert err.value.where == where


def test_profiles_load_list_and_validate(tmp_path: Path) -> None:
    names = edgetwin.list_profiles()
    assert "hi-nova-9-pro" in names and names == sorted(names)
    by_name = edgetwin.load_profile("hi-nova-9-pro")
    path = ROOT / "profiles" / "devices" / "hi-nova-9-pro.yaml"
    assert edgetwin.load_profile(path).sha256 == by_name.sha256
    assert edgetwin.validate_profile(str(path)).sha256 == by_name.sha256
    data = yaml.safe_load(path.read_text())
    data["memory"]["usable_ram_mb"] = 1e9
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as err:
        edgetwin.validate_profile(broken)
    assert err.value.key == "memory.usable_ram_mb" and err.value.where == str(broken)
    with pytest.raises(InputError, match="cannot read"):
        edgetwin.validate_profile(tmp_path / "missing.yaml")


def synthetic_trace(path: Path) -> None:
    """Op timings from one known roofline, over every other case of the quick suite."""
    truth = OpCost(flops_per_s=5e10, bytes_per_s=1e10, overhead_s=5e-6)
    writer = TraceWriter(path)
    for case in base_cases(np.random.default_rng(0), quick=True)[::2]:
        t = truth.latency_s(case.flops, case.bytes, None, case.kernels)
        writer.write(Measurement(case.id, case.op, case.phase, case.shape, "fp32", case.flops,
                                 case.bytes, Latency(t, t, t, t, 0.0, 5), case.kernels,
                                 {"device": "cpu", "threads": 1}))
    writer.close()


def test_calibrate_from_a_trace_gives_what_the_command_gives(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "bench.trace.jsonl"
    synthetic_trace(trace)
    assert main(["calibrate", "--from-trace", str(trace), "--name", "bench",
                 "--out", str(tmp_path / "cli.yaml")]) == 0
    cal = edgetwin.calibrate(from_trace=trace, name="bench", out=tmp_path / "api.yaml")
    assert cal.path.read_text() == (tmp_path / "cli.yaml").read_text()
    assert edgetwin.validate_profile(cal.path).sha256 == cal.profile.sha256
    assert cal.profile.compute["matmul"].flops_per_s == pytest.approx(5e10, rel=0.05)
    assert cal.fits["matmul"].score.mape_pct < 5.0 and len(cal.measurements) > 40
    assert edgetwin.price_workload("gpt2", cal.profile).step_time_s > 0


def test_calibrate_refuses_what_it_cannot_measure(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        edgetwin.calibrate("phone")
    assert err.value.key == "device"
    with pytest.raises(InputError) as err:
        edgetwin.calibrate("cuda", from_trace=tmp_path / "t.jsonl")
    assert err.value.key == "from_trace"


def test_a_sweep_with_workers_runs_from_a_plain_script_without_a_main_guard(
        tmp_path: Path) -> None:
    """A script that calls `edgetwin.sweep(..., workers=2)` at its top level, as a new
    user writes one: the workers do not run the script again (which started a sweep in
    each, and every run died), and every run completes."""
    import subprocess
    import sys

    script = tmp_path / "study.py"
    script.write_text(
        "import edgetwin\n"
        "print('the script ran', flush=True)\n"
        f"s = edgetwin.sweep({str(QUICKSTART)!r}, grid={{'selection.policy': ['random', 'oort']}},"
        f" seeds=2, workers=2, overrides={{'stop.rounds': 3}}, out={str(tmp_path / 'sw')!r})\n"
        "print(s)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("the script ran") == 1
    assert "4 runs, 0 failed" in done.stdout, done.stdout
