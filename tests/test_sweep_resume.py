"""A sweep whose worker is killed (SIGKILL) and which is then interrupted (Ctrl-C) carries
on when the same command runs again: every run present once, none recomputed that had
finished, nothing half-written left behind."""

from __future__ import annotations

import csv
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edgetwin.cli import main
from tests.processes import start_interruptible

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "thousand_clients.yaml"
ARGS = [str(SCENARIO), "--grid", "selection.policy=random,deadline_aware,oort",
        "--grid", "orchestration.overcommit=0.2,0.5", "--seeds", "4", "--workers", "2"]
RUNS = 24
TIMEOUT_S = 120.0


def _finished(runs: Path) -> dict[str, tuple[int, int]]:
    """Run folders written whole: name -> (inode, mtime) of their summary.json."""
    out = {}
    for p in runs.glob("[!.]*"):
        summary = p / "summary.json"
        if (p / "run.json").is_file() and summary.is_file():
            st = summary.stat()
            out[p.name] = (st.st_ino, st.st_mtime_ns)
    return out


def _workers(pid: int) -> list[int]:
    """The sweep's worker processes (children started by multiprocessing's spawn)."""
    kids = (Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    return [int(k) for k in kids
            if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


def _wait_for(what: str, check: object, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_and_interrupt_then_rerun_finishes(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    runs = out / "runs"
    proc = start_interruptible([sys.executable, "-m", "edgetwin.cli", "sweep", *ARGS,
                                "--out", str(out), "--quiet"])
    try:
        _wait_for("two finished runs", lambda: len(_finished(runs)) >= 2)
        workers = _workers(proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)  # mid-run: each worker holds a run
        _wait_for("the pool restarted", lambda: workers[0] not in _workers(proc.pid) and
                  len(_workers(proc.pid)) == 2)
        _wait_for("one more run", lambda: len(_finished(runs)) >= 3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "runs not run; the same command carries on" in err
    before = _finished(runs)
    assert 3 <= len(before) < RUNS, "the sweep finished before it was interrupted"
    assert not list(runs.glob(".*")), "a half-written run was left behind"
    with (out / ".sweep.lock").open() as fh:  # let go: another sweep may take it
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fh, fcntl.LOCK_UN)
    with (out / "sweep.csv").open() as fh:  # what had finished is already in sweep.csv
        assert len(list(csv.DictReader(fh))) == len(before)

    assert main(["sweep", *ARGS, "--out", str(out), "--quiet"]) == 0
    after = _finished(runs)
    assert len(after) == RUNS and sorted(p.name for p in runs.iterdir()) == sorted(after)
    assert {name: after[name] for name in before} == before  # none recomputed
    with (out / "sweep.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == RUNS and {r["status"] for r in rows} == {"ok"}
    assert sorted(r["run"].removeprefix("runs/") for r in rows) == sorted(after)


def test_a_damaged_run_folder_runs_again_with_a_line(tmp_path: Path) -> None:
    """A kept run folder whose rounds.csv is gone is not kept as finished: it runs again,
    a line names it, and sweep.md says so."""
    from tests.cli_runs import edgetwin

    quick = [str(ROOT / "scenarios" / "quickstart.yaml"), "--grid",
             "selection.policy=random,oort", "--seeds", "1", "--set", "stop.rounds=3",
             "--workers", "1", "--out", str(tmp_path / "sw"), "--quiet"]
    assert edgetwin("sweep", *quick).returncode == 0
    with (tmp_path / "sw" / "sweep.csv").open() as fh:
        run = next(csv.DictReader(fh))["run"]
    (tmp_path / "sw" / run / "rounds.csv").unlink()
    done = edgetwin("sweep", *quick)
    assert done.returncode == 0, done.stderr
    assert f"1 run folder(s) not whole (a file missing or cut short) ran again: {run}" \
        in done.stderr
    assert (tmp_path / "sw" / run / "rounds.csv").is_file()
    assert "1 ran now on this process (1 of them damaged since and run again), 1 were " \
        "kept" in (tmp_path / "sw" / "sweep.md").read_text()


def test_a_pool_that_cannot_start_says_so_in_one_line(tmp_path: Path) -> None:
    """Workers that could not start (here: a broken threadpoolctl on the path) are one
    line that says why, before any run is charged with their deaths."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "threadpoolctl.py").write_text(
        "raise ImportError('threadpoolctl is broken in this environment')\n")
    done = subprocess.run(
        [sys.executable, "-m", "edgetwin.cli", "sweep", str(ROOT / "scenarios" / "quickstart.yaml"),
         "--grid", "selection.policy=random,oort", "--seeds", "1", "--set", "stop.rounds=3",
         "--workers", "2", "--out", str(tmp_path / "sw"), "--quiet"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(shadow)})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "edgetwin: error: --workers: 2: a worker process cannot start here (ImportError: "
        "threadpoolctl is broken in this environment): --workers 1 runs in this process")
