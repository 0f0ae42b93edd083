"""`edgetwin traces import-fedscale`: a FedScale availability pickle becomes a trace that
edgetwin replays as FedScale's own rule reads it, past the first period too; a scenario
runs on it; a bad file is refused in one line and leaves --out alone."""

from __future__ import annotations

import datetime
import json
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edgetwin.cli import main
from edgetwin.emulator.availability import Trace
from tests.cli_runs import edgetwin

from .emulator_helpers import small_scenario

ROOT = Path(__file__).resolve().parents[1]
HOUR = 3600

# FedScale's format (client id -> duration, inactive, finish_time, active, model); the
# finish_times differ and each divides the largest (6 h)
FEDSCALE: dict[int, dict[str, Any]] = {
    3: {"duration": 7200, "active": [0, 1800, 5000], "inactive": [600, 3000, 7200],
        "finish_time": 2 * HOUR, "model": "CPH1801"},
    1: {"duration": 21600, "active": [100, 9000], "inactive": [4000, 20000],
        "finish_time": 6 * HOUR, "model": "SM-G960F"},
    7: {"duration": 10800, "active": [2000.5], "inactive": [10000.25],
        "finish_time": 3 * HOUR},
    12: {"duration": 3600, "active": [0, 1200], "inactive": [900, 1200],  # one empty
         "finish_time": HOUR},
}


def fedscale_active(entry: dict[str, Any], t_s: float) -> bool:
    """FedScale's rule (fedscale/cloud/internal/client_metadata.py, is_active): the time
    modulo finish_time within some [active[i], inactive[i]], without its cursor."""
    norm = t_s % entry["finish_time"]
    return any(a <= norm <= b for a, b in zip(entry["active"], entry["inactive"], strict=True))


def _pickle(path: Path, data: Any) -> Path:
    path.write_bytes(pickle.dumps(data))
    return path


def _import(src: Path, out: Path, *extra: str) -> int:
    return main(["traces", "import-fedscale", str(src), "--out", str(out), *extra])


def test_round_trip_matches_fedscale_rule_past_the_first_period(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = _pickle(tmp_path / "client_behave_trace", FEDSCALE), tmp_path / "online.csv"
    assert _import(src, out) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == (
        f"wrote {out}: 4 clients, 17 intervals, period 21600 s (6.0 h), mean available "
        f"share {_share():.1%}")
    assert captured.err == ""  # every finish_time divides 6 h; client 3 is on at its end
    trace = Trace.load(out)
    assert trace.n_clients == 4 and trace.period_s == 6 * HOUR
    ids = sorted(FEDSCALE)  # edgetwin's client i replays trace client i mod 4, by id
    rng = np.random.default_rng(7)
    times = np.concatenate([rng.uniform(0, 4 * 6 * HOUR, 3000),
                            [6 * HOUR + 150.0, 13 * HOUR + 2100.0, 30 * HOUR + 9999.0]])
    fleet = np.arange(8)  # two fleet clients on each trace client
    for t in times:
        got = trace.online(fleet, np.full(8, t))
        want = [fedscale_active(FEDSCALE[ids[i % 4]], t) for i in fleet]
        assert got.tolist() == want, t
    # an interval that runs into the next finish_time is one spell: client 3 (fleet
    # client 1) is on 5000..7200 and again from 0, so 2 h + 0 .. 2 h + 600 joins it
    assert float(trace.end_s(np.array([1]), np.array([6000.0]))[0]) == 2 * HOUR + 600


def _share() -> float:
    on = {1: 3900 + 11000, 3: 3 * (600 + 1200 + 2200), 7: 2 * 7999.75, 12: 6 * 900}
    return sum(on.values()) / (4 * 6 * HOUR)


def test_clients_takes_the_first_ids_and_the_module_runs_as_a_command(tmp_path: Path) -> None:
    src, out = _pickle(tmp_path / "trace.pkl", FEDSCALE), tmp_path / "two.csv"
    done = edgetwin("traces", "import-fedscale", str(src), "--out", str(out), "--clients", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out}: 2 clients, ")
    lines = out.read_text().splitlines()
    assert lines[0] == "client,start_s,end_s,period_s"
    assert {line.split(",")[0] for line in lines[1:]} == {"1", "3"}
    assert "1,9000,20000,21600" in lines and "3,5000,7800,21600" in lines


def test_clients_with_other_periods_are_warned(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = {0: {"active": [0], "inactive": [20], "finish_time": 60},
            1: {"active": [10], "inactive": [40], "finish_time": 100}}
    out = tmp_path / "t.csv"
    assert _import(_pickle(tmp_path / "t.pkl", data), out) == 0
    err = capsys.readouterr().err
    assert "1 clients' finish_time does not divide the period 100 s" in err
    assert "loops" not in err  # the CSV carries the period, though no one is on at 100
    trace = Trace.load(out)
    assert trace.period_s == 100
    t = np.arange(0.5, 100, 1.0)  # within the first period the rule holds
    for c in (0, 1):
        want = [fedscale_active(data[c], x) for x in t]
        assert trace.online(np.full(t.shape, c), t).tolist() == want


def test_a_scenario_runs_on_the_imported_trace(tmp_path: Path) -> None:
    assert _import(_pickle(tmp_path / "trace.pkl", FEDSCALE), tmp_path / "online.csv") == 0
    d = small_scenario(availability={"trace": "online.csv"})
    d["stop"] = {"rounds": 3}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    run = tmp_path / "run"
    assert main(["simulate", str(tmp_path / "s.yaml"), "--out", str(run), "--quiet",
                 "--no-plots"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rounds_completed"] == 3
    resolved = yaml.safe_load((run / "scenario.resolved.yaml").read_text())
    assert resolved["availability"]["trace"] == "inputs/online.csv"
    assert (run / "inputs" / "online.csv").read_bytes() == (tmp_path / "online.csv").read_bytes()


def _entry(**over: Any) -> dict[str, Any]:
    return {**FEDSCALE[3], **over}


BAD = {
    "class": ({5: {**FEDSCALE[3], "finish_time": datetime.datetime(2020, 1, 1)}},
              "refused: the pickle needs datetime.datetime"),
    "missing": ({5: {k: v for k, v in FEDSCALE[3].items() if k != "active"}},
                "client 5: active: missing"),
    "decreasing": ({5: _entry(active=[0, 1800, 1000], inactive=[600, 3000, 7200])},
                   "client 5: active: [2] = 1000 is before inactive[1] = 3000: times "
                   "must increase"),
    "inverted": ({5: _entry(active=[700], inactive=[600])},
                 "client 5: inactive: [0] = 600 is before active[0] = 700"),
    "lengths": ({5: _entry(inactive=[600, 3000])},
                "client 5: inactive: has 2 times but active has 3"),
    "text": ({5: _entry(active=[0, "1800", 5000])},
             "client 5: active: [1] = '1800' is not a number"),
    "nan": ({5: _entry(finish_time=math.nan)},
            "client 5: finish_time: expected a number > 0, got nan"),
    "past": ({5: _entry(finish_time=7000)},
             "client 5: inactive: [2] = 7200 is past finish_time 7000"),
    "empty": ({5: _entry(active=[], inactive=[])},
              "client 5: active: expected a non-empty list"),
    "never": ({5: _entry(active=[10], inactive=[10])},
              "client 5: inactive: every interval is empty"),
    "twice": ({5: FEDSCALE[3], "5": FEDSCALE[1]}, "client '5': the id 5 is given twice"),
    "id": ({"phone-a": FEDSCALE[3]}, "client 'phone-a': expected a whole-number client id"),
    "list": ([FEDSCALE[3]], "expected a dict of client id"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_pickle_is_one_line_and_out_is_kept(tmp_path: Path, case: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data, problem = BAD[case]
    src = _pickle(tmp_path / "bad.pkl", data)
    out = tmp_path / "online.csv"
    out.write_text("client,start_s,end_s\n0,0,10\n")
    assert _import(src, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"edgetwin: error: {src}: "), err
    assert problem in err
    assert out.read_text() == "client,start_s,end_s\n0,0,10\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pkl", "online.csv"]


def test_a_file_that_is_no_pickle_is_refused_and_out_not_created(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, body in (("notes.txt", b"client,start_s,end_s\n0,0,10\n"),
                       ("cut.pkl", pickle.dumps(FEDSCALE)[:40]), ("empty.pkl", b"")):
        src = tmp_path / name
        src.write_bytes(body)
        out = tmp_path / "never.csv"
        assert _import(src, out) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"edgetwin: error: {src}: not a pickle")
        assert not out.exists()
    missing = tmp_path / "nowhere.pkl"
    assert _import(missing, tmp_path / "never.csv") == 2
    assert capsys.readouterr().err == f"edgetwin: error: {missing}: cannot read (No such file " \
        "or directory)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.pkl", "empty.pkl", "notes.txt"]


def test_a_class_pickle_is_never_run(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    # what a hostile pickle does: call a function while loading (here: create a file)
    payload = (b"cos\nmkdir\n(V" + str(marker).encode() + b"\ntR.")
    src = tmp_path / "evil.pkl"
    src.write_bytes(payload)
    assert _import(src, tmp_path / "o.csv") == 2
    assert "refused: the pickle needs os.mkdir" in capsys.readouterr().err
    assert not marker.exists()


def test_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _pickle(tmp_path / "t.pkl", FEDSCALE)
    assert _import(src, tmp_path / "o.csv", "--clients", "0") == 2
    assert capsys.readouterr().err == "edgetwin: error: --clients: 0: must be >= 1\n"
    assert _import(src, tmp_path / "no" / "dir" / "o.csv") == 2
    assert "o.csv: --out: cannot write (No such file or directory)" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_a_failed_write_leaves_out_and_no_temporary_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _pickle(tmp_path / "t.pkl", FEDSCALE)
    out = tmp_path / "taken"  # a folder: the rename into place fails after the write
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _import(src, out) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edgetwin: error: {out}: --out: cannot write (") and err.count("\n") == 1
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.pkl", "taken"]


def test_a_finish_time_that_would_repeat_without_end_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = {1: {"active": [0], "inactive": [1e-3], "finish_time": 1e-3},
            2: {"active": [0], "inactive": [10], "finish_time": 1e9}}
    src = _pickle(tmp_path / "t.pkl", data)
    assert _import(src, tmp_path / "o.csv") == 2
    assert capsys.readouterr().err == (
        f"edgetwin: error: {src}: client 1: finish_time: 0.001 s, repeated up to the longest "
        "(1e+09 s), makes too many intervals\n")
    assert _import(src, tmp_path / "o.csv", "--clients", "1") == 0  # alone, it is its own
