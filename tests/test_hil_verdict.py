"""The local one-core device (this host pinned to its first core, one torch thread),
calibrated and checked, in one module so that its calibration and its cross-checks run
minutes apart, not the length of the test run (a shared machine drifts in between):

- a quick calibration through its agent, interrupted with Ctrl-C and resumed, loses no
  measurement and records what a session costs and how much it varies;
- a calibration with the device's core kept busy is refused in one line, and with
  `--allow-busy` its profile says so;
- the cross-check's verdict, right both ways: the profile calibrated and corrected by a
  replay's recalibration (the tool's own loop) is `consistent` on a run over it, the
  same profile made 1.3 times too fast `inconsistent`;
- an asynchronous run's replay reports its selection agreement."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgetwin.calibration.profile_builder import write_profile
from edgetwin.emulator.scenario_checks import resolve_model
from edgetwin.hil.replay.recalibrate import corrected
from edgetwin.profiles.costmodel import predict_step
from edgetwin.profiles.device import Provenance, load_profile
from edgetwin.profiles.method import Method
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload

from .cli_runs import run_cli
from .hil_helpers import wait_for, wait_until_quiet
from .processes import start_interruptible

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Calibrated:
    """The local one-core device (this host pinned to its first core, one torch thread),
    calibrated quickly through its agent: interrupted once with Ctrl-C, then resumed."""

    devices: Path
    profile: Path
    trace: Path
    interrupted: list[str]  # the trace's lines when the first run was interrupted
    interrupted_status: int
    again_status: int  # the same command again, without --resume
    again_stderr: str


@pytest.fixture(scope="module")
def one_core_calibration(tmp_path_factory: pytest.TempPathFactory) -> Calibrated:
    folder = tmp_path_factory.mktemp("one-core")
    devices = folder / "devices.yaml"
    devices.write_text(yaml.safe_dump({"devices": [
        {"name": "one", "profile": "one.yaml", "runner": {"kind": "torch"},
         "transport": {"kind": "local", "cpus": sorted(os.sched_getaffinity(0))[:1],
                       "threads": 1, "workdir": str(folder / "work")}}]}))
    trace = folder / "one.trace.jsonl"
    cmd = [sys.executable, "-m", "edgetwin.cli", "calibrate", "--device", "one", "--devices",
           str(devices), "--quick"]
    proc = start_interruptible(cmd)

    def lines() -> int:
        return len(trace.read_text().splitlines()) if trace.exists() else 0

    # interrupt mid-calibration: once 25 measurements are journaled (or the run has ended)
    wait_for(lambda: lines() >= 25 or proc.poll() is not None, 180,
             "25 measurements in the trace")
    assert proc.poll() is None, proc.communicate()[1]  # still calibrating when interrupted
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    interrupted = trace.read_text().splitlines()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run_cli(*cmd[3:], "--resume") == 0
    return Calibrated(devices, folder / "one.yaml", trace, interrupted, proc.returncode,
                      again.returncode, again.stderr)


@pytest.fixture(scope="module")
def one_core(one_core_calibration: Calibrated) -> tuple[Path, Path]:
    """(devices file, calibrated profile) of the local one-core device."""
    return one_core_calibration.devices, one_core_calibration.profile


@pytest.mark.slow  # a quick calibration of the one-core device, interrupted and resumed
def test_interrupted_calibration_resumes_without_losing_a_measurement(
        one_core_calibration: Calibrated) -> None:
    c = one_core_calibration
    assert c.interrupted_status == 130
    assert len(c.interrupted) >= 25
    assert c.again_status == 2 and "--resume" in c.again_stderr  # nothing overwritten
    after = c.trace.read_text().splitlines()
    assert after[: len(c.interrupted)] == c.interrupted  # every measurement kept as it was
    records = [json.loads(line) for line in after]
    cases = [r["case"] for r in records if "record" not in r]
    assert len(cases) == len(set(cases)) > len(c.interrupted)
    # host facts, heap-retention probes and probe sessions are journaled once each; the load
    # is read before each run (the interrupted one and the resumed one) and after
    kinds = Counter(r.get("record") for r in records if "record" in r)
    assert kinds == {"host": 1, "retention": 2, "probe_session": 18, "load": 3}
    assert [r["phase"] for r in records if r.get("record") == "load"] == [
        "before", "before", "after"]
    # the quick profile is valid and prices workloads
    assert run_cli("profiles", "validate", str(c.profile)) == 0
    profile = load_profile(str(c.profile))
    step = predict_step(profile, build_workload(
        resolve_model("gpt2", Path(".")), Method("lora", 8, 16.0, ("c_attn",)),
        TrainingSetup(batch=2, seq=64)))
    assert step.step_time_s > 0 and step.fits_in_memory
    assert profile.provenance["compute.matmul"].kind == "calibrated"
    assert profile.provenance["compute"].kind == "assumed"  # no power meter here
    assert profile.identity["threads"] == "1"
    # the allocator's heap retention, measured on probe models' real steps
    kept = profile.provenance["memory.heap_retention"]
    assert kept.kind == "calibrated" and "probe-llama-640" in kept.note
    assert 0.0 <= profile.memory.heap_retention < 5.0
    # the in-situ correction's note is written once and every op's fit refers to it
    shared = profile.provenance["compute.in_situ"].note
    assert "3 sessions each" in shared
    notes = [pr.note for key, pr in profile.provenance.items() if key != "compute.in_situ"]
    assert not any(shared in note for note in notes)
    assert sum("corrected by compute.in_situ" in note for note in notes) >= 10
    # what a session costs beyond its steps, and how much it varies, measured
    sc = profile.session
    assert 0 < sc.session_cv < 0.5 and 0 < sc.step_cv < 0.5
    assert sc.session_setup_s + sc.session_setup_s_per_mparam > 0
    assert 0 <= sc.first_step_extra < 5
    for key in ("session_cv", "step_cv", "session_setup_s", "first_step_extra"):
        assert profile.provenance[f"compute.{key}"].kind == "calibrated", key
    held_out = profile.provenance["compute.session_cv"].fit_error["held_out_probe_rms_pct"]
    assert held_out > 0
    # the load while it was measured, recorded
    assert profile.load is not None and profile.load.probe_s > 0
    assert profile.provenance["load"].kind == "calibrated"


@pytest.mark.slow  # the one-core device's calibration, resumed with its core kept busy
def test_a_busy_device_is_refused_in_one_line_and_its_profile_says_so(
        one_core_calibration: Calibrated, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    c = one_core_calibration
    trace = tmp_path / "one.trace.jsonl"
    shutil.copy(c.trace, trace)
    out = tmp_path / "busy.yaml"
    cmd = ["calibrate", "--device", "one", "--devices", str(c.devices), "--quick", "--resume",
           "--trace", str(trace), "--out", str(out)]
    core = sorted(os.sched_getaffinity(0))[:1]
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                           preexec_fn=lambda: os.sched_setaffinity(0, core))
    try:
        capfd.readouterr()
        assert run_cli(*cmd) == 2
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("edgetwin: error: one: load: the device is "
                                                   "busy: other processes used")
        assert "--allow-busy" in err[0] and not out.exists()
        assert run_cli(*cmd, "--allow-busy") == 0
        warned = [line for line in capfd.readouterr().err.splitlines() if "busy" in line]
    finally:
        hog.kill()
        hog.wait()
    assert warned and "its profile records it (load.busy)" in warned[-1]
    profile = load_profile(str(out))
    assert profile.load is not None and profile.load.busy
    assert max(profile.load.other_cpu_share_before, profile.load.other_cpu_share_after) > 0.5
    quiet = load_profile(str(c.profile))
    assert quiet.load is not None and not quiet.load.busy

# a Llama of 4 layers and hidden 384 with LoRA on q and v: a step of about 0.1 s on one
# core, a session of about a second
MODEL = {"_name_or_path": "desk-mini", "model_type": "llama", "hidden_size": 384,
         "num_hidden_layers": 4, "num_attention_heads": 6, "num_key_value_heads": 2,
         "head_dim": 64, "intermediate_size": 1024, "vocab_size": 16000,
         "tie_word_embeddings": False, "hidden_act": "silu"}


def scenario(folder: Path, profile: str, deadline_s: float, **over: Any) -> Path:
    (folder / "desk-mini").mkdir(parents=True, exist_ok=True)
    (folder / "desk-mini" / "config.json").write_text(json.dumps(MODEL))
    net = {"downlink_mbps": 40, "uplink_mbps": 20, "latency_ms": 20}
    data: dict[str, Any] = {
        "name": "desk", "seed": 9,
        "fleet": {"clients": 150, "groups": [
            {"name": "ones", "profile": profile, "share": 1.0,
             "setup": {"batch": 2, "seq": 64}, "network": net}]},
        "workload": {"model": "desk-mini", "lora_rank": 8, "lora_targets": ["q_proj", "v_proj"]},
        "data": {"local_steps": 5},
        "availability": {"mean_session_s": None, "online_fraction": 1.0},
        "orchestration": {"clients_per_round": 10, "overcommit": 0.3, "deadline_s": deadline_s,
                          "close_at_target": False},
        "stop": {"rounds": 15}, **over}
    path = folder / f"desk-{Path(profile).stem}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def simulate_near_the_deadline(folder: Path, profile: str, name: str, **over: Any) -> Path:
    """The run with its deadline just above the median session: many timing-sensitive."""
    probe = folder / f"{name}-free"
    assert run_cli("simulate", str(scenario(folder, profile, 600.0, **over)), "--out",
                   str(probe), "--quiet", "--no-plots") == 0
    rows = (probe / "client_sessions.csv").read_text().splitlines()
    header = rows[0].split(",")
    spans = [float(r.split(",")[header.index("end_s")]) - float(r.split(",")[header.index(
        "start_s")]) for r in rows[1:]]
    out = folder / name
    assert run_cli("simulate", str(scenario(folder, profile, 1.1 * statistics.median(spans),
                                            **over)),
                   "--out", str(out), "--quiet", "--no-plots") == 0
    return out


def replay(run: Path, devices: Path, sample: int, *extra: str) -> dict[str, Any]:
    wait_until_quiet(yaml.safe_load(devices.read_text())["devices"][0]["transport"]["cpus"])
    assert run_cli("replay", str(run), "--devices", str(devices), "--sample", str(sample),
                   "--no-plots", *extra) == 0
    report: dict[str, Any] = json.loads((run / "replay" / "crosscheck.json").read_text())
    return report


@pytest.fixture(scope="module")
def desk_profile(one_core: tuple[Path, Path]) -> Path:
    """The one-core device's profile as the tool makes it for this workload: calibrated,
    then corrected by a replay's recalibration where that scores better on the sessions
    it was not fitted to (the quick calibration predicts a model it never saw within
    about 10 %, and the device drifts; recalibration takes out this workload's share)."""
    devices, profile = one_core
    folder = devices.parent
    first = simulate_near_the_deadline(folder, "one.yaml", "first")
    wait_until_quiet(yaml.safe_load(devices.read_text())["devices"][0]["transport"]["cpus"])
    assert run_cli("replay", str(first), "--devices", str(devices), "--sample", "20",
                   "--recalibrate", "--no-plots") == 0
    fixed = first / "replay" / "profiles" / "one.yaml"
    chosen = folder / "one-for-desk.yaml"
    chosen.write_text((fixed if fixed.exists() else profile).read_text())
    return chosen


ATTEMPTS = 5  # replays, each recalibrating from the one before where that scores better
# step time error (predicted / measured - 1) the replays' means may spread over before the
# device, not the profile, is taken to have moved: a recalibration moves it by its own
# bias, about 10 % on this machine
DRIFT = 0.15


def _skip_if_the_device_drifted(verdicts: list[tuple[str, list[str], float]]) -> None:
    """Skip, saying by how much, where the replays' step time errors spread further than
    recalibration explains: this shared machine's core then changed speed under them, and
    no verdict on a profile can be had from it (a steady device that stays inconsistent
    fails the test)."""
    means = [v[2] for v in verdicts]
    if max(means) - min(means) > DRIFT:
        pytest.skip(f"the one-core device drifted: over {len(means)} replays minutes apart "
                    f"its step time error moved between {min(means):+.1%} and "
                    f"{max(means):+.1%}, more than {DRIFT:.0%}; the verdict needs a "
                    "steadier device (see docs/devices.md on drift)")


def test_the_calibrated_profile_is_consistent_and_one_too_fast_is_not(
        one_core: tuple[Path, Path], desk_profile: Path) -> None:
    """The calibrated profile replays `consistent`; the same 1.3 times too fast does not.
    This shared two-core machine drifts (two replays minutes apart have measured it 35 %
    apart), and a device that drifted since its calibration is recalibrated from its
    replay, as docs/devices.md says: so the profile gets up to ATTEMPTS replays, each
    recalibrated from the one before (only where that scores better on held-out
    sessions), and must come out consistent in one; the one 1.3 times too fast is made
    from the profile that did, 1.3 times faster than the device measured in that replay."""
    devices, _ = one_core
    folder = devices.parent
    verdicts = []
    for attempt in range(ATTEMPTS):
        run = simulate_near_the_deadline(folder, desk_profile.name, f"right-{attempt}")
        right = replay(run, devices, 40, "--recalibrate")
        assert right["sessions_replayed"] == 40 and right["sessions_lost"] == 0
        verdicts.append((right["verdict"], right["verdict_reasons"], right["bias"]["mean"]))
        if right["verdict"] == "consistent":
            break
        fixed = run / "replay" / "profiles" / "one.yaml"
        if fixed.exists():  # written only where it scored better on the held-out half
            desk_profile.write_text(fixed.read_text())
    if right["verdict"] != "consistent":
        _skip_if_the_device_drifted(verdicts)
    assert right["verdict"] == "consistent", verdicts
    assert right["sensitive_sessions"] >= 10
    # the same profile with every cost 1.3 times faster than the device measured in that
    # replay: a consistent verdict leaves a bias within the stated interval's reach (+9 %
    # was seen, with a quick calibration's session_cv of 15 %), and a profile 1.3 times
    # faster than one already 9 % slow is only 16 % too fast, which such an interval
    # rightly absorbs
    p = load_profile(str(desk_profile))
    measured = 1.3 * (1.0 + right["bias"]["mean"])
    fast = dataclasses.replace(corrected(p, 1 / measured, 0.0, Provenance(
        "assumed", "a test", "2026-12-06", "1.3 times too fast")), name="fast")
    write_profile(fast, folder / "fast.yaml")
    fast_devices = folder / "fast-devices.yaml"
    data = yaml.safe_load(devices.read_text())
    data["devices"][0]["profile"] = "fast.yaml"
    fast_devices.write_text(yaml.safe_dump(data))
    wrong = replay(simulate_near_the_deadline(folder, "fast.yaml", "fast"), fast_devices, 40)
    assert wrong["verdict"] == "inconsistent", wrong["verdict_reasons"]
    # it errs further on the fast side than the calibrated one, replayed minutes before on
    # the same device (23 % from that replay's measurements by construction; the device's
    # own drift between two replays can move either's coverage more than that of the other)
    assert wrong["bias"]["mean"] < right["bias"]["mean"], (wrong["bias"], right["bias"])
    assert wrong["bias"]["high"] < 0  # predicted faster than measured, beyond doubt


def test_an_asynchronous_replay_reports_its_selection_agreement(
        one_core: tuple[Path, Path]) -> None:
    devices, _ = one_core
    folder = devices.parent
    run = folder / "async"
    path = scenario(folder, "one.yaml", 600.0, selection={"policy": "oort"})
    assert run_cli("simulate", str(path), "--out", str(run), "--quiet", "--no-plots",
                   "--set", "orchestration.mode=async", "--set", "stop.rounds=6") == 0
    report = replay(run, devices, 6)
    assert isinstance(report["selection_agreement"], float)
    assert report["selection_agreement_note"] == ""
    assert report["selection_agreement_by_group"].keys() == {"ones"}
