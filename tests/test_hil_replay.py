"""Replay on local devices: sampling, the journal and resuming, faults, the report."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgetwin.emulator.config import SelectionConfig
from edgetwin.emulator.engine import Engine
from edgetwin.emulator.output.folder import load_run
from edgetwin.emulator.selection.registry import POLICIES
from edgetwin.emulator.session import STATUSES
from edgetwin.hil.replay import decisions
from edgetwin.hil.replay.crosscheck import SelectionCheck
from edgetwin.hil.replay.run import prepare
from edgetwin.hil.replay.sampling import SENSITIVE, UNIFORM, stratified_sample
from edgetwin.hil.replay.sessions import RunSession
from tests.cli_runs import edgetwin
from tests.hil_helpers import (
    agent_processes,
    journal_entries,
    local_devices,
    simulated,
    wait_for,
)
from tests.processes import start_interruptible

KEYS = ("sessions_sampled", "sessions_replayed", "sessions_lost", "step_time", "session_time",
        "peak_memory", "energy", "decision_agreement", "decision_agreement_sensitive",
        "sensitive_sessions", "decision_agreement_by_margin", "selection_agreement",
        "selection_agreement_note", "per_device", "strata", "interval_coverage_90", "brier",
        "brier_expected", "calibration_z", "bias", "verdict", "verdict_reasons")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("hil")
    devices = local_devices(folder)
    return simulated(folder), devices


def as_emulated(s: RunSession) -> dict[str, object]:
    """Measurements exactly as the run emulated the session."""
    step = s.cost.step_s * s.compute_factor
    return {"step_time_s": [step] * s.local_steps, "median_step_s": step,
            "load_s": s.cost.setup_s, "peak_memory_mb": s.cost.peak_memory_mb,
            "out_of_memory": False}


def test_the_run_is_reproduced_and_replanning_without_measurements_changes_nothing(
        tiny_run: tuple[Path, Path]) -> None:
    run_dir, devices = tiny_run
    prepared = prepare(run_dir, devices)
    model = prepared.engine.model
    assert len(prepared.sessions) == len((run_dir / "client_sessions.csv").read_text()
                                         .splitlines()) - 1
    for s in prepared.sessions:
        again = model.replan(s.planned, np.array([s.index]))
        assert again.stop_s[0] == s.planned.stop_s[s.index]
        assert again.stop_cause[0] == s.planned.stop_cause[s.index]
        o = model.account(again, np.array([s.cut_s]), s.batch.cut_status)
        assert STATUSES[int(o.status[0])] == s.outcome
    # every session measured as it was emulated: its round derived again decides the same
    entries = [{"session": s.row, "measured": as_emulated(s)} for s in prepared.sessions]
    decided = decisions.decide(model, prepared.results, prepared.sessions, entries)
    assert all(decided[s.row] == s.outcome for s in prepared.sessions)
    # and the sessions that had completed, ten times slower, are cut by those that had not
    assert {s.outcome for s in prepared.sessions} == {"completed", "cancelled"}
    slow = [{"session": e["session"], "measured": {
        **e["measured"], "step_time_s": [10 * t for t in e["measured"]["step_time_s"]]}}
        if s.outcome == "completed" else e for s, e in zip(prepared.sessions, entries,
                                                           strict=True)]
    slower = decisions.decide(model, prepared.results, prepared.sessions, slow)
    assert any(slower[s.row] != s.outcome for s in prepared.sessions if s.outcome == "completed")


def test_a_run_that_no_longer_reproduces_is_refused(tiny_run: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    run_dir, devices = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    lines = (copy / "client_sessions.csv").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if ",completed," in line)
    lines[first] = lines[first].replace(",completed,", ",deadline,")
    (copy / "client_sessions.csv").write_text("\n".join(lines) + "\n")
    out = edgetwin("replay", str(copy), "--devices", str(devices), "--sample", "2")
    assert out.returncode == 2
    assert "no longer reproduces this run" in out.stderr and len(out.stderr.splitlines()) == 1


def test_samples_are_stratified_seeded_and_over_represent_sensitive_sessions(
        tiny_run: tuple[Path, Path]) -> None:
    prepared = prepare(*tiny_run)
    sessions = prepared.sessions
    a = stratified_sample(sessions, 10, seed=1)
    assert a == stratified_sample(sessions, 10, seed=1)
    assert a != stratified_sample(sessions, 10, seed=2)
    rows = [r for r, _ in a]
    assert len(rows) == len(set(rows)) == 10
    sensitive = [s.row for s in sessions if s.sensitive]
    assert sensitive and len(sensitive) < len(sessions)
    strata = Counter(st for _, st in a)
    assert strata[SENSITIVE] == min(len(sensitive), 5)
    assert all(sessions[r].sensitive for r, st in a if st == SENSITIVE)
    # each (outcome, group) of the run gets a session in the uniform stratum where the
    # budget allows
    pairs = {(s.status, s.group) for s in sessions}
    uniform = {(sessions[r].status, sessions[r].group) for r, st in a if st == UNIFORM}
    assert len(pairs) <= strata[UNIFORM] and uniform == pairs
    # the uniform stratum is proportional: over many seeds its completed share follows the run
    share = np.mean([s.outcome == "completed" for s in sessions])
    drawn = [sessions[r].outcome == "completed" for seed in range(30)
             for r, st in stratified_sample(sessions, 10, seed) if st == UNIFORM]
    assert abs(np.mean(drawn) - share) < 0.15


def test_selection_asked_again_with_unchanged_costs_keeps_every_client(
        tiny_run: tuple[Path, Path]) -> None:
    run = load_run(tiny_run[0])
    for policy in ("random", "deadline_aware", "oort"):
        scenario = dataclasses.replace(run.scenario, selection=SelectionConfig(policy=policy))
        check = SelectionCheck({0, 1, 2}, {}, POLICIES[policy])
        Engine(scenario, run.base, run.seed, observer=check).run()
        assert sum(check.chosen.values()) > 0
        assert check.kept == check.chosen, policy
        slower = SelectionCheck({0, 1, 2}, {0: (1e6, 1.0, 1.0)}, POLICIES[policy])
        Engine(scenario, run.base, run.seed, observer=slower).run()
        if policy == "deadline_aware":  # a group a million times slower no longer fits
            assert slower.kept.get(0, 0) < slower.chosen.get(0, 0)


def test_replay_journals_reports_and_resumes_without_repeating(tiny_run: tuple[Path, Path],
                                                                tmp_path: Path) -> None:
    run_dir, devices = tiny_run
    out = tmp_path / "replay"
    done = edgetwin("replay", str(run_dir), "--devices", str(devices), "--sample", "6",
                    "--out", str(out), "--recalibrate")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "crosscheck.json").read_text())
    for key in KEYS:
        assert key in report, key
    assert report["sessions_sampled"] == 6 and report["sessions_replayed"] == 6
    assert report["sessions_lost"] == 0 and report["energy"] is None  # no meter here
    for metric in ("step_time", "session_time", "peak_memory"):
        assert set(report[metric]) >= {"median_abs_error", "mean_signed_error", "within_10pct"}
    assert set(report["per_device"]) == {"dev-one", "dev-two"}
    assert set(report["strata"]) == {"uniform", "timing_sensitive"}
    assert report["upload_bytes_mismatches"] == []  # PEFT's tensors, exactly the model's bytes
    entries = journal_entries(out / "journal.jsonl")
    # the report's agreement is the journal's sessions decided again, not a number in range
    run = prepare(run_dir, devices)
    decided = decisions.decide(run.engine.model, run.results, run.sessions, entries)
    agree = sum(decided[int(e["session"])] == e["outcome"] for e in entries) / len(entries)
    assert report["decision_agreement"] == round(agree, 4)
    assert report["verdict"] == "inconclusive"  # six sessions: too few to judge
    assert report["selection_agreement"] is None  # random selection reads no costs
    assert "not applicable" in report["selection_agreement_note"]
    for name in ("crosscheck.md", "predicted_vs_measured.png", "error_cdf.png",
                 "error_over_time.png", "reliability.png"):
        assert (out / name).exists(), name
    assert (out / "crosscheck.md").read_text().splitlines()[2] == "**Verdict: inconclusive.**"
    assert "replayed 6 of 6 sessions (0 lost)" in done.stdout
    for c in report["recalibration"]:  # written only where it scored better
        steps = c["after"]["median_abs_error"] < c["before"]["median_abs_error"]
        spread = c["session_cv"] > c["session_cv_before"] and \
            abs(c["coverage_after"] - 0.9) < abs(c["coverage_before"] - 0.9)
        assert c["written"] == (steps or spread)
        assert (out / "profiles" / f"{c['profile']}.yaml").exists() == c["written"]
        if c["written"]:
            text = (out / "profiles" / f"{c['profile']}.yaml").read_text()
            assert "edgetwin replay of run run" in text and "sessions replayed on dev-" in text
    assert len(entries) == 6 and {e["status"] for e in entries} == {"replayed"}
    before = (out / "journal.jsonl").read_text()
    again = edgetwin("replay", str(run_dir), "--devices", str(devices), "--sample", "6",
                     "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert (out / "journal.jsonl").read_text() == before  # nothing repeated
    other = edgetwin("replay", str(run_dir), "--devices", str(devices), "--sample", "5",
                     "--out", str(out))
    assert other.returncode == 2 and "sample_size" in other.stderr


def test_a_killed_agent_is_recorded_lost_and_the_rerun_finishes(tmp_path: Path) -> None:
    devices = local_devices(tmp_path)
    run_dir = simulated(tmp_path, steps=40)
    out = tmp_path / "replay"
    cmd = [sys.executable, "-m", "edgetwin.cli", "replay", str(run_dir), "--devices", str(devices),
           "--sample", "3", "--out", str(out), "--retries", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workdir = tmp_path / "work-one"
    # an agent in the middle of a session: the agent and its forked worker
    wait_for(lambda: len(agent_processes(workdir)) >= 2, 120, "a session on dev-one")
    agent = min(pid for pid, _ in agent_processes(workdir))
    os.kill(agent, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err  # sessions lost: the command did not do all its job
    assert "sessions were lost (journal.jsonl has each reason)" in err
    first = journal_entries(out / "journal.jsonl")
    lost = [e for e in first if e["status"] == "lost"]
    assert lost and all("dev-one" in e["reason"] or "link" in e["reason"] for e in lost)
    assert not agent_processes(workdir)  # the worker died with its agent
    report = json.loads((out / "crosscheck.json").read_text())
    assert report["sessions_lost"] == len(lost)
    again = subprocess.run([c for c in cmd if c not in ("--retries", "0")], capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    entries = journal_entries(out / "journal.jsonl")
    replayed = Counter(e["session"] for e in entries if e["status"] == "replayed")
    assert all(n == 1 for n in replayed.values())  # none repeated
    assert set(replayed) == {int(r) for r, _ in json.loads(
        (out / "journal.jsonl").read_text().splitlines()[0])["sample"]}
    assert json.loads((out / "crosscheck.json").read_text())["sessions_lost"] == 0


def test_ctrl_c_stops_cleanly_and_the_same_command_carries_on(tmp_path: Path) -> None:
    devices = local_devices(tmp_path)
    run_dir = simulated(tmp_path, steps=20)
    out = tmp_path / "replay"
    cmd = [sys.executable, "-m", "edgetwin.cli", "replay", str(run_dir), "--devices", str(devices),
           "--sample", "6", "--out", str(out)]
    proc = start_interruptible(cmd)
    wait_for(lambda: len(journal_entries(out / "journal.jsonl")) >= 2, 180, "two results")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command to carry on" in err and "Traceback" not in err
    before = journal_entries(out / "journal.jsonl")
    assert 2 <= len(before) < 6 and not (out / "crosscheck.json").exists()
    assert not agent_processes(tmp_path / "work-one")  # the devices were stopped
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = journal_entries(out / "journal.jsonl")
    assert after[: len(before)] == before  # kept as they were
    rows = [e["session"] for e in after]
    assert len(rows) == len(set(rows)) == 6


def test_devices_standing_for_no_group_are_refused(tiny_run: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    run_dir, _ = tiny_run
    other = tmp_path / "devices.yaml"
    other.write_text("devices:\n  - name: x\n    profile: laptop-x86-8core\n"
                     "    transport: {kind: local}\n")
    out = edgetwin("replay", str(run_dir), "--devices", str(other))
    assert out.returncode == 2
    assert out.stderr.startswith(f"edgetwin: error: {other}: devices: no device stands for")
