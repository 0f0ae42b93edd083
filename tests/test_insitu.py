"""In-situ correction and queued launches: the step-level fit finds known factors again."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from edgetwin.calibration.insitu import StepSplit, apply_in_situ, fit_in_situ, probes, split_step
from edgetwin.calibration.probe_models import Probe
from edgetwin.profiles.costmodel import predict_step
from edgetwin.profiles.device import DeviceProfile, load_profile
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import CATALOGUE
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload


def _laptop(launch: Literal["synchronous", "queued"] = "synchronous") -> DeviceProfile:
    return dataclasses.replace(load_profile("laptop-x86-8core"), launch=launch)


def _parts(profile: DeviceProfile, quick: bool = False) -> list[tuple[Probe, StepSplit]]:
    """Each probe with its (contraction, other, launches, fresh-page, launch) split."""
    return [(p, split_step(profile, build_workload(p.arch, p.method,
                                                   TrainingSetup(batch=p.batch, seq=p.seq))))
            for p in probes(quick)]


def _predicted(profile: DeviceProfile, p: Probe) -> float:
    w = build_workload(p.arch, p.method, TrainingSetup(batch=p.batch, seq=p.seq))
    return predict_step(profile, w).compute_time_s


def test_queued_launches_cost_the_larger_of_launch_and_device_time() -> None:
    sync, queued = _laptop(), _laptop("queued")
    for method, batch in ((Method("full"), 4), (Method("lora", 8, 16.0, ("c_attn",)), 1)):
        w = build_workload(CATALOGUE["gpt2"], method, TrainingSetup(batch=batch, seq=64))
        c, o, _, fixed, launch_s = split_step(sync, w)
        serial = predict_step(sync, w).compute_time_s
        assert serial == pytest.approx(c + o + fixed + launch_s, rel=1e-9)
        assert predict_step(queued, w).compute_time_s == \
            pytest.approx(max(launch_s, serial - launch_s), rel=1e-9)
        assert predict_step(queued, w).step_energy_j < predict_step(sync, w).step_energy_j


def test_synchronous_fit_recovers_known_factors_and_overhead() -> None:
    profile = _laptop()
    timed = [(p, 1.3 * c + 1.7 * o + 4e-6 * k + fixed)
             for p, (c, o, k, fixed, _) in _parts(profile)]
    fix = fit_in_situ(profile, timed)
    assert (fix.factor, fix.other_factor) == (pytest.approx(1.3, rel=1e-3),
                                              pytest.approx(1.7, rel=1e-3))
    assert fix.overhead_s == pytest.approx(4e-6, rel=1e-3)
    assert fix.mape_pct < 0.01
    p, t = timed[0]
    assert _predicted(apply_in_situ(profile, fix), p) == pytest.approx(t, rel=1e-6)


def test_queued_fit_recovers_the_launch_factor() -> None:
    profile = _laptop("queued")
    timed = [(p, max(12.0 * launch_s, 1.2 * (c + o + fixed)))  # some of each bound
             for p, (c, o, _, fixed, launch_s) in _parts(profile)]
    fix = fit_in_situ(profile, timed)
    assert fix.overhead_factor == pytest.approx(12.0, rel=1e-3)
    assert fix.factor == pytest.approx(1.2, rel=1e-3)
    assert fix.mape_pct < 0.01
    p, t = timed[-1]
    assert _predicted(apply_in_situ(profile, fix), p) == pytest.approx(t, rel=1e-6)


def test_in_situ_never_makes_ops_faster_than_alone() -> None:
    profile = _laptop()
    timed = [(p, 0.5 * (c + o) + fixed)  # faster than the micro-benchmarks
             for p, (c, o, _, fixed, _) in _parts(profile, quick=True)]
    fix = fit_in_situ(profile, timed)
    assert fix.factor >= 1.0 and fix.other_factor >= 1.0 and fix.overhead_s >= 0.0
