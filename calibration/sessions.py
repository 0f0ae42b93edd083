"""What a session costs beyond its steps, and how much it varies: the profile's
`compute.session_cv`, `step_cv`, `session_setup_s`, `session_setup_s_per_mparam` and
`first_step_extra`, fitted from repeated probe sessions.

Each probe model runs several whole sessions, each in a process of its own. Their
steady steps give the in-situ correction its step times; beyond that:
- `session_cv`: how much one session's compute (its set-up and every step) varies around
  the prediction from one session to the next: the spread between sessions of one
  probe, pooled over the probes, taken at the upper end of its 90 % confidence interval
  (a handful of sessions understates a spread; with 18, by about a third). The error of
  the prediction itself on a workload the correction never saw (each probe left out
  once) is systematic, the same for every session of that workload; it is recorded
  beside it (`held_out_probe_rms_pct`), and a cross-check shows it as a bias;
- `step_cv`: one steady step around its session's mean (root mean square over sessions);
- set-up (model built, optimizer made): a fixed part and one per million parameters,
  fitted (non-negative) to the probes' median set-ups;
- `first_step_extra`: what the first step takes beyond a steady one, as a share of it
  (the median over sessions).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.optimize import nnls

from edgetwin.calibration.insitu import apply_in_situ, fit_in_situ
from edgetwin.calibration.probe_models import Probe
from edgetwin.calibration.steps import ProbeSession
from edgetwin.profiles.costmodel import predict_step
from edgetwin.profiles.device import DeviceProfile
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload

Runs = list[tuple[Probe, list[ProbeSession]]]


@dataclass(frozen=True)
class SessionFit:
    session_cv: float
    step_cv: float
    session_setup_s: float
    session_setup_s_per_mparam: float
    first_step_extra: float
    noise_cv: float  # between sessions of one probe
    model_error: float  # root mean square log error of probes left out of the correction
    sessions: int
    probes: int

    def note(self) -> str:
        return (f"the spread of a session's compute (set-up and steps) between sessions of "
                f"one probe model, {self.noise_cv:.1%} pooled over {self.sessions} sessions of "
                f"{self.probes} probes (each in a process of its own), at the upper end of its "
                f"90 % confidence interval. Apart from it, each probe predicted by the in-situ "
                f"correction fitted without it: {self.model_error:.1%} (root mean square), an "
                "error the same for every session of a workload")


def steady_s(sessions: list[ProbeSession]) -> float:
    """A probe's step time: the median of its sessions' steady steps."""
    return float(statistics.median(s.steady_s for s in sessions))


def fit_sessions(micro: DeviceProfile, runs: Runs, min_overhead_s: float) -> SessionFit:
    """The session figures of a device, from its probes' sessions; `micro` is the profile
    from the micro-benchmarks alone (before the in-situ correction)."""
    sessions = [s for _, ss in runs for s in ss]
    noise, dof = _pooled_cv([[s.total_s for s in ss] for _, ss in runs])
    upper = noise * math.sqrt(dof / float(stats.chi2.ppf(0.10, dof))) if dof else 0.0
    model_error = _rms(leave_one_out(micro, runs, min_overhead_s))
    setup_a, setup_b = _setup_fit(runs)
    return SessionFit(
        session_cv=round(upper, 4),
        step_cv=round(_rms([s.step_cv for s in sessions]), 4),
        session_setup_s=round(setup_a, 4), session_setup_s_per_mparam=round(setup_b, 5),
        first_step_extra=round(max(0.0, statistics.median(s.first_extra for s in sessions)),
                               4),
        noise_cv=noise, model_error=model_error, sessions=len(sessions), probes=len(runs))


def leave_one_out(micro: DeviceProfile, runs: Runs, min_overhead_s: float) -> list[float]:
    """Each probe's log error when the in-situ correction is fitted to the others."""
    timed = [(p, steady_s(ss)) for p, ss in runs]
    if len(timed) < 3:
        return []
    out = []
    for i, (p, measured) in enumerate(timed):
        fix = fit_in_situ(micro, timed[:i] + timed[i + 1:], min_overhead_s)
        corrected = apply_in_situ(micro, fix)
        c = predict_step(corrected, build_workload(p.arch, p.method,
                                                   TrainingSetup(batch=p.batch, seq=p.seq)))
        out.append(math.log((c.compute_time_s + c.storage_time_s) / measured))
    return out


def _setup_fit(runs: Runs) -> tuple[float, float]:
    """Set-up = a + b x million parameters, a and b >= 0, over the probes' median set-ups."""
    x, y = [], []
    for p, ss in runs:
        w = build_workload(p.arch, p.method, TrainingSetup(batch=p.batch, seq=p.seq))
        x.append(w.total_params / 1e6)
        y.append(statistics.median(s.setup_s for s in ss))
    if len(set(x)) < 2:
        return float(statistics.median(y)), 0.0
    sol, _ = nnls(np.column_stack([np.ones(len(x)), x]), np.array(y))
    return float(sol[0]), float(sol[1])


def _pooled_cv(groups: list[list[float]]) -> tuple[float, int]:
    """The coefficient of variation within groups, pooled (each group's variance relative
    to its mean squared, weighted by its degrees of freedom), and those degrees."""
    num, dof = 0.0, 0
    for g in groups:
        if len(g) > 1:
            num += (len(g) - 1) * (statistics.stdev(g) / statistics.fmean(g)) ** 2
            dof += len(g) - 1
    return (math.sqrt(num / dof), dof) if dof else (0.0, 0)


def _rms(values: list[float]) -> float:
    return math.sqrt(statistics.fmean(v * v for v in values)) if values else 0.0
