"""Run folders in Parquet (`--format parquet`): the same figures as the CSV files in a
fraction of the bytes, read back by the API (and by pandas), and checked by replay's
rerun as the CSV is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgetwin
from edgetwin.common.errors import InputError
from edgetwin.emulator.observer import Observer
from edgetwin.emulator.output.folder import load_run, rerun
from tests.cli_runs import edgetwin as cli

pytest.importorskip("pyarrow", reason="the parquet extra is not installed")
QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("runs")
    for fmt in ("csv", "parquet"):
        done = cli("simulate", str(QUICKSTART), "--out", str(folder / fmt), "--quiet",
                   "--no-plots", "--format", fmt)
        assert done.returncode == 0, done.stderr
    return folder / "csv", folder / "parquet"


def test_parquet_holds_the_csv_figures(runs: tuple[Path, Path]) -> None:
    csv_run, parquet_run = runs
    assert sorted(p.name for p in parquet_run.glob("*.parquet")) == [
        "client_sessions.parquet", "rounds.parquet"]
    assert not list(parquet_run.glob("*.csv"))
    a, b = edgetwin.load_run(csv_run), edgetwin.load_run(parquet_run)
    for table in ("sessions", "rounds"):
        x, y = getattr(a, table), getattr(b, table)
        assert x.keys() == y.keys()
        for k in x:
            if x[k].dtype.kind == "f":
                np.testing.assert_allclose(x[k], y[k].astype(float), atol=1e-9, err_msg=k)
            else:
                assert list(x[k]) == list(y[k]), k
    assert (csv_run / "summary.json").read_bytes() == (parquet_run / "summary.json").read_bytes()


def test_to_pandas_gives_the_sessions_and_the_rounds(runs: tuple[Path, Path]) -> None:
    pytest.importorskip("pandas", reason="the analysis extra is not installed")
    run = edgetwin.load_run(runs[1])
    frame = run.to_pandas()
    assert len(frame) == run.summary["client_sessions"]
    assert str(frame["status"].dtype) == "category"
    assert frame["energy_j"].sum() == pytest.approx(run.summary["energy_j"], rel=1e-6)
    assert len(run.to_pandas("rounds")) == len(edgetwin.load_run(runs[0]).rounds["round"])


def test_replay_checks_a_parquet_run_as_it_checks_a_csv_one(runs: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    """The rerun that replay trusts reproduces the Parquet folder; a CSV folder cut short
    is named as such, not as a change of the emulator."""
    _, results = rerun(load_run(runs[1]), Observer())
    assert len(results.sessions["client"]) == edgetwin.load_run(runs[1]).summary[
        "client_sessions"]
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for p in runs[0].iterdir():
        if p.is_file():
            (damaged / p.name).write_bytes(p.read_bytes())
    sessions = damaged / "client_sessions.csv"
    sessions.write_bytes(sessions.read_bytes()[:-10])
    with pytest.raises(InputError, match="cut short"):
        rerun(load_run(damaged), Observer())
