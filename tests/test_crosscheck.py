"""A cross-check that can fail, without devices: margins and completion probabilities
checked against the engine itself, rounds derived again as the emulator derives them,
the verdict's rule, and recalibration that writes only what scores better."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edgetwin.emulator.engine import Engine, Results
from edgetwin.emulator.output.folder import load_run
from edgetwin.emulator.session import COMPLETED, STATUSES, SessionCosts
from edgetwin.emulator.sync_rounds import close_round
from edgetwin.hil.replay import decisions, verdict
from edgetwin.hil.replay.recalibrate import MAX_SESSION_CV, recalibrate
from edgetwin.hil.replay.run import Prepared, predicted
from edgetwin.hil.replay.sessions import RunSession, SessionRecorder
from edgetwin.profiles import variability
from edgetwin.profiles.device import load_profile

from .cli_runs import run_cli
from .emulator_helpers import build, small_scenario
from .hil_helpers import journal_entries, local_devices, simulated, tiny_scenario


def recorded(data: dict[str, Any]) -> tuple[Engine, Results, list[RunSession]]:
    s = build(data)
    recorder = SessionRecorder()
    engine = Engine(s, Path(__file__).resolve().parents[1] / "scenarios", s.seed or 0,
                    observer=recorder)
    results = engine.run()
    return engine, results, recorder.sessions(results)


def churning(**over: Any) -> dict[str, Any]:
    """Rounds closed at their target with 50 % over-commitment, clients going offline and
    abandoning sessions; no throttling, so compute time scales with the step."""
    settings: dict[str, Any] = {
        "orchestration": {"clients_per_round": 5, "overcommit": 0.5, "deadline_s": 45},
        "availability": {"mean_session_s": 300, "online_fraction": 0.6,
                         "dropout_per_hour": 6.0, "charging_only": False},
        "data": {"local_steps": 30}, "thermal": {"enabled": False}, "stop": {"rounds": 15}}
    return small_scenario(**{**settings, **over})


def status_with(engine: Engine, s: RunSession, phi: float) -> int:
    """The session's outcome in its round with its steps taking `phi` times as long, the
    round's close recomputed by the engine's own rule, the others as they ran."""
    batch = s.batch
    n = len(batch.planned.client)
    k = engine.fleet.cost_index[batch.planned.client]
    scale = np.ones(n)
    scale[s.index] = phi
    costs = SessionCosts(step_s=engine.model.costs.step_s[k] * scale,
                         busy_w=engine.model.costs.busy_w[k],
                         peak_memory_mb=engine.model.costs.peak_memory_mb[k],
                         factor=batch.planned.compute_factor)
    p = engine.model.replan(batch.planned, np.arange(n), costs)
    orch = engine.scenario.orchestration
    closed = close_round(p, float(p.start_s[0]), orch, min(orch.clients_per_round, n))
    return int(engine.model.account(p, np.full(n, closed.cut_s), closed.cut_status)
               .status[s.index])


def test_a_sessions_margin_is_where_its_round_changes_its_outcome() -> None:
    engine, results, sessions = recorded(churning())
    statuses = {STATUSES[s.status] for s in sessions}
    assert {"completed", "cancelled", "offline"} <= statuses  # every kind of bound is met
    checked = 0
    for s in sessions:
        if int(s.batch.round[0]) >= len(results.rounds):
            continue  # the round the stop cut short
        m = s.timing_margin
        assert status_with(engine, s, 1.0) == s.status
        if not math.isfinite(m):
            for phi in (0.2, 0.5, 2.0, 5.0):
                assert status_with(engine, s, phi) == s.status, (s.row, phi)
            continue
        checked += 1
        outward = 1.001 if m > 1 else 0.999
        assert status_with(engine, s, m * outward) != s.status, (s.row, m)
        inward = 0.999 if m > 1 else 1.001
        assert status_with(engine, s, m * inward) == s.status, (s.row, m)
        # and no nearer flip: halfway between 1 and the margin keeps the outcome
        assert status_with(engine, s, math.sqrt(m)) == s.status, (s.row, m)
    assert checked > 100


def test_p_complete_is_the_share_of_drawn_sessions_that_complete() -> None:
    engine, results, sessions = recorded(churning())
    rng = np.random.default_rng(0)
    unsure = [s for s in sessions if 0.1 < s.p_complete < 0.9
              and int(s.batch.round[0]) < len(results.rounds)][:6]
    assert len(unsure) >= 3
    for s in unsure:
        cv = s.cost.session_cv
        draws = variability.from_uniform(rng.random(300), np.full(300, cv))
        # the session's step at a fresh draw, its round as it ran
        done = [status_with(engine, s, float(f) / s.compute_factor) == COMPLETED for f in draws]
        share = sum(done) / len(done)
        sd = math.sqrt(s.p_complete * (1 - s.p_complete) / len(done))
        assert abs(share - s.p_complete) <= 4 * sd + 0.01, (s.row, share, s.p_complete)


def as_measured(s: RunSession, factor: float) -> dict[str, Any]:
    """Measurements of a session `factor` times its emulated compute."""
    step = s.cost.step_s * s.compute_factor * factor
    return {"step_time_s": [step] * s.local_steps, "median_step_s": step,
            "load_s": s.cost.setup_s * factor, "peak_memory_mb": s.cost.peak_memory_mb,
            "out_of_memory": False}


def test_a_uniform_slowdown_of_a_target_closed_round_flips_no_decision() -> None:
    engine, results, sessions = recorded(churning(
        availability={"mean_session_s": None, "online_fraction": 1.0, "charging_only": False},
        orchestration={"clients_per_round": 5, "overcommit": 0.5, "deadline_s": 120}))
    rounds: dict[int, list[RunSession]] = {}
    for s in sessions:
        rounds.setdefault(int(s.batch.round[0]), []).append(s)
    # closed at their target, with room for 10 % more before the deadline
    target_closed = [r for r, ss in rounds.items() if r < len(results.rounds)
                     and ss[0].batch.cut_status == STATUSES.index("cancelled")
                     and 1.1 * (results.rounds[r].closed_s - results.rounds[r].start_s) < 120]
    assert len(target_closed) >= 10
    flipped_before = 0
    for r in target_closed:
        entries = [{"session": s.row, "measured": as_measured(s, 1.1), "outcome": s.outcome}
                   for s in rounds[r]]
        decided = decisions.decide(engine.model, results, sessions, entries)
        assert all(decided[s.row] == s.outcome for s in rounds[r]), r
        # with the round's close held where it was, the same slowdown flips sessions
        flipped_before += sum(decisions.fixed_close_status(engine.model, s, e["measured"])
                              != s.outcome for s, e in zip(rounds[r], entries, strict=True))
    assert flipped_before > 0


def entries_of(sessions: list[RunSession], factor: float, rng: np.random.Generator,
               noisy: bool = True) -> list[dict[str, Any]]:
    """Replayed-session entries measured `factor` times the profile's nominal compute, each
    session drawn from its profile's session variability where `noisy`."""
    out = []
    for s in sessions:
        cv = np.array([s.cost.session_cv if noisy else 0.0])
        f = factor * float(variability.from_uniform(rng.random(1), cv)[0])
        step = s.cost.step_s * f
        out.append({"session": s.row, "outcome": s.outcome, "predicted": predicted(s),
                    "measured": {"step_time_s": [step] * s.local_steps, "median_step_s": step,
                                 "load_s": s.cost.setup_s * f,
                                 "peak_memory_mb": s.cost.peak_memory_mb,
                                 "out_of_memory": False}})
    return out


@pytest.mark.parametrize("seed", range(5))
def test_the_verdict_holds_a_right_profile_and_fails_one_too_fast_by_30_percent(
        seed: int) -> None:
    engine, results, sessions = recorded(churning())
    rng = np.random.default_rng(seed)
    picks = [sessions[int(i)] for i in rng.choice(len(sessions), 40, replace=False)]
    for factor, want in ((1.0, "consistent"), (1.3, "inconsistent"), (1 / 1.3, "inconsistent")):
        entries = entries_of(picks, factor, rng)
        decided = decisions.decide(engine.model, results, sessions, entries)
        s = verdict.scores(entries, {r: v == "completed" for r, v in decided.items()})
        got, reasons = verdict.verdict(s)
        assert got == want, (factor, reasons)
    few = entries_of(picks[: verdict.MIN_SESSIONS - 1], 1.0, rng)
    decided = decisions.decide(engine.model, results, sessions, few)
    got, _ = verdict.verdict(verdict.scores(few, {r: v == "completed"
                                                  for r, v in decided.items()}))
    assert got == "inconclusive"


def test_recalibration_that_scores_no_better_writes_nothing(tmp_path: Path) -> None:
    devices = local_devices(tmp_path)
    run_dir = simulated(tmp_path)
    from edgetwin.hil.replay.run import prepare

    prepared: Prepared = prepare(run_dir, devices)
    rng = np.random.default_rng(1)
    picks = [prepared.sessions[int(i)] for i in rng.choice(len(prepared.sessions), 12,
                                                           replace=False)]
    def replayed(factor: float) -> list[dict[str, Any]]:
        out = entries_of(picks, factor, rng, noisy=False)
        for e in out:
            e["device"] = "dev"
            e["profile"] = prepared.profile_name(prepared.sessions[e["session"]])
        return out

    # measured exactly as predicted: a correction cannot score better, nothing is written
    out = tmp_path / "recal"
    kept = recalibrate(prepared, replayed(1.0), out, seed=0)
    assert kept and all(not c["written"] and c["file"] is None for c in kept)
    assert all("stays as it was" in c["note"] for c in kept)
    assert not (out / "profiles").exists()
    # measured 1.5 times slower: the correction scores better on the other half: written
    written = recalibrate(prepared, replayed(1.5), out, seed=0)
    assert written and all(c["written"] for c in written)
    for c in written:
        assert c["step_factor"] == pytest.approx(1.5, rel=1e-6)
        data = yaml.safe_load(Path(c["file"]).read_text())
        assert data["name"] == c["profile"]
    assert load_run(run_dir).scenario.name == "tiny"


def test_recalibration_widens_a_spread_the_device_shows_and_never_narrows_it(
        tmp_path: Path) -> None:
    """Sessions measured right on average but spread wider than the profile states (a
    device calibrated quiet, replayed busy): the recalibrated profile states the wider
    spread, and its 90 % intervals cover the held-out half nearer 90 %; sessions spread
    as stated leave it as it was."""
    devices = local_devices(tmp_path)
    run_dir = simulated(tmp_path, rounds=40)
    from edgetwin.hil.replay.run import prepare

    prepared: Prepared = prepare(run_dir, devices)
    rng = np.random.default_rng(2)
    picks = [prepared.sessions[int(i)] for i in rng.choice(len(prepared.sessions), 160,
                                                           replace=False)]
    stated = picks[0].cost.session_cv

    def replayed(cv: float) -> list[dict[str, Any]]:
        out = []
        for s in picks:
            f = float(variability.from_uniform(rng.random(1), np.array([cv]))[0])
            step = s.cost.step_s * f
            out.append({"session": s.row, "outcome": s.outcome, "predicted": predicted(s),
                        "device": "dev", "profile": prepared.profile_name(s),
                        "measured": {"step_time_s": [step] * s.local_steps,
                                     "median_step_s": step, "load_s": s.cost.setup_s * f,
                                     "peak_memory_mb": s.cost.peak_memory_mb,
                                     "out_of_memory": False}})
        return out

    wide = recalibrate(prepared, replayed(1.5 * stated), tmp_path / "wide", seed=0)
    assert wide and all(c["written"] for c in wide)
    for c in wide:
        assert c["session_cv_before"] == pytest.approx(stated, abs=1e-4)
        assert 1.2 * stated < c["session_cv"] <= MAX_SESSION_CV
        assert abs(c["coverage_after"] - 0.9) < abs(c["coverage_before"] - 0.9)
        assert load_profile(c["file"]).session.session_cv == pytest.approx(c["session_cv"],
                                                                           abs=1e-4)
    as_stated = recalibrate(prepared, replayed(stated), tmp_path / "same", seed=0)
    assert all(c["session_cv"] == c["session_cv_before"] for c in as_stated)
    # the check is sharp: a spread twice the cap states the cap, not more
    capped = recalibrate(prepared, replayed(2 * MAX_SESSION_CV), tmp_path / "cap", seed=0)
    assert all(c["session_cv"] == MAX_SESSION_CV for c in capped)


def test_a_measured_session_out_of_memory_is_out_of_memory_in_its_round() -> None:
    engine, results, sessions = recorded(churning())
    s = next(x for x in sessions if x.outcome == "completed"
             and int(x.batch.round[0]) < len(results.rounds))
    entry = {"session": s.row, "measured": {"out_of_memory": True, "reason": "bound"}}
    assert decisions.decide(engine.model, results, sessions, [entry])[s.row] == "out_of_memory"


def test_margins_strata_and_classes_are_consistent() -> None:
    _, _, sessions = recorded(churning())
    classes = {s.margin_class for s in sessions}
    assert classes == {"sensitive", "robust", "fixed"}
    for s in sessions:
        if s.margin_class == "fixed":
            assert not math.isfinite(s.timing_margin)
        if s.sensitive:
            assert 1 / 1.25 <= s.timing_margin <= 1.25
        assert 0.0 <= s.p_complete <= 1.0


def test_what_a_runner_cannot_run_as_priced_is_lost_with_the_reason(tmp_path: Path) -> None:
    from edgetwin.hil.agent.requests import not_replayable
    from edgetwin.profiles.method import Method
    from edgetwin.profiles.models import CATALOGUE
    from edgetwin.profiles.training_setup import Sharding, TrainingSetup
    from edgetwin.profiles.workload import build_workload

    def w(method: Method | None = None, **setup: Any) -> Any:
        return build_workload(CATALOGUE["gpt2"], method or Method("lora", 8, 16.0, ("c_attn",)),
                              TrainingSetup(batch=1, seq=32, **setup))

    assert not_replayable(w(), "torch") is None and not_replayable(w(), "native") is None
    assert not_replayable(w(autocast="bf16"), "torch") is None
    assert "fp32 only" in str(not_replayable(w(autocast="bf16"), "native"))
    assert "attention" in str(not_replayable(w(memory_efficient_attention=True), "native"))
    assert not_replayable(w(activation_checkpointing=True), "native") is None
    assert "sharding" in str(not_replayable(w(sharding=Sharding()), "torch"))
    split = Method("lora", 8, 16.0, ("c_attn",), split_layer=2)
    assert "SplitLoRA" in str(not_replayable(w(split), "torch"))
    # a run whose sessions the (native) devices cannot run: journaled lost, with the reason,
    # without a device being asked
    devices = local_devices(tmp_path, native=True)
    scenario = yaml.safe_load(tiny_scenario(tmp_path).read_text())
    for g in scenario["fleet"]["groups"]:
        g["setup"]["memory_efficient_attention"] = True
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(scenario))
    run = tmp_path / "run"
    assert run_cli("simulate", str(tmp_path / "tiny.yaml"), "--out", str(run), "--quiet",
                   "--no-plots") == 0
    # every session lost: the command did not do its job, whatever --allow-lost says
    assert run_cli("replay", str(run), "--devices", str(devices), "--sample", "4",
                   "--no-plots", "--allow-lost") == 1
    entries = journal_entries(run / "replay" / "journal.jsonl")
    assert len(entries) == 4 and {e["status"] for e in entries} == {"lost"}
    assert {e["reason"] for e in entries} == {
        "not replayable: the native runner has no memory-efficient attention kernel"}
    assert not (tmp_path / "work-one").exists()  # no device was started


def _scored(p_and_outcomes: list[tuple[float, bool]]) -> verdict.Scores:
    """Scores of sessions measured as predicted, each with its p_complete and outcome."""
    entries = [{"session": i, "predicted": {"compute_p05_s": 0.9, "compute_p95_s": 1.1,
                                            "p_complete": p, "step_s": 1.0,
                                            "session_cv": 0.05},
                "measured": {"step_time_s": [1.0], "median_step_s": 1.0, "load_s": 0.0}}
               for i, (p, _) in enumerate(p_and_outcomes)]
    return verdict.scores(entries, {i: done for i, (_, done) in enumerate(p_and_outcomes)})


def test_probabilities_that_lean_the_wrong_way_fail_and_too_unsure_ones_pass_with_a_note(
        ) -> None:
    """Spiegelhalter's z, one-sided: outcomes against the side p_complete leans to (what a
    profile too fast or too slow does) fail; outcomes with it every time, at p of 0.3 and
    0.7, only say the twin was less sure than it need be."""
    unsure = [(0.7, True)] * 15 + [(0.3, False)] * 15  # every outcome as leaned
    z_under = _scored(unsure)
    assert z_under.calibration_z is not None and z_under.calibration_z < -verdict.Z_LIMIT
    got, reasons = verdict.verdict(z_under)
    assert got == "consistent" and any("less sure than they need be" in r for r in reasons)
    wrong = [(0.7, False)] * 12 + [(0.7, True)] * 3 + [(0.3, True)] * 12 + [(0.3, False)] * 3
    z_over = _scored(wrong)
    assert z_over.calibration_z is not None and z_over.calibration_z > verdict.Z_LIMIT
    got, reasons = verdict.verdict(z_over)
    assert got == "inconsistent" and any("against the side" in r for r in reasons)
    # outcomes that fall as the probabilities say: neither
    fair = [(0.7, True)] * 21 + [(0.7, False)] * 9 + [(0.3, True)] * 9 + [(0.3, False)] * 21
    z_fair = _scored(fair)
    assert z_fair.calibration_z == pytest.approx(0.0, abs=1e-9)
    assert verdict.verdict(z_fair)[0] == "consistent"


def _biased(step_error: float, cv: float, n: int = 40) -> verdict.Scores:
    """Scores of `n` sessions whose predicted step is off by `step_error` (+-1 %), each
    inside its interval, with a stated session_cv of `cv`."""
    entries = [{"session": i,
                "predicted": {"compute_p05_s": 0.0, "compute_p95_s": 9.0, "p_complete": 1.0,
                              "step_s": 1.0 + step_error + (0.01 if i % 2 else -0.01),
                              "session_cv": cv},
                "measured": {"step_time_s": [1.0], "median_step_s": 1.0, "load_s": 0.0}}
               for i in range(n)]
    return verdict.scores(entries, {i: True for i in range(n)})


def test_a_bias_within_the_stated_intervals_reach_passes_and_one_beyond_it_fails() -> None:
    """A mean step error of -7 % with session_cv 5.8 % lies inside what the stated 90 %
    interval reaches (+-9.5 %): it passes; -23 % (a profile 1.3 times too fast) fails,
    and so does -7 % when the profile claims a session_cv of 3 %."""
    small = _biased(-0.07, 0.058)
    assert small.bias is not None and small.bias["high"] < -0.058  # beyond one session_cv
    assert verdict.verdict(small)[0] == "consistent"
    got, reasons = verdict.verdict(_biased(-0.23, 0.058))
    assert got == "inconsistent" and any("interval's reach" in r for r in reasons)
    assert verdict.verdict(_biased(-0.07, 0.03))[0] == "inconsistent"
