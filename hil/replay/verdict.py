"""The cross-check's scores and its verdict: does the twin's prediction, with the
uncertainty it states, hold on the devices?

The twin states, for every session, a 90 % interval of its compute time (from the
profile's `compute.session_cv`) and the probability that it completes
(`p_complete`). The replayed sessions score both:

- `interval_coverage_90`: the share of replayed sessions whose measured compute
  (set-up and steps) lies inside its predicted 90 % interval;
- `brier`: the mean squared difference between `p_complete` and the outcome derived
  with the measured figures (1 completed, 0 not), beside `brier_expected`, what it
  would be if outcomes fell as the probabilities say; `calibration_z` is
  Spiegelhalter's test of the two (z > 2.33: outcomes fall against the side the
  probabilities lean to; z < -2.33: they fall with it more often than the probabilities
  say, which is a twin less sure than it need be);
- `bias`: the step time's mean signed error (predicted / measured - 1) with its 95 %
  interval (Student's t).

The verdict, at the 1 % level:
- `inconclusive` with fewer than `MIN_SESSIONS` timed sessions;
- `inconsistent` if the intervals cover significantly fewer than 90 % of the sessions
  (a one-sided binomial test), or the sessions centre further from the prediction than
  the stated 90 % interval reaches beyond doubt (the bias's 95 % interval lies wholly
  outside +-1.645 session_cv, a bias no stated interval can absorb), or decisions
  the twin was sure of (p_complete at most 0.02 or at least
  0.98) flip significantly more often than 2 % (binomial), or the probabilities lean the
  wrong way (z > 2.33 over at least `MIN_UNSURE` sessions the twin was unsure of);
- `consistent` otherwise. Like intervals that cover more than 90 %, probabilities less sure
  than they need be (z < -2.33) pass with a note: the profile's session_cv, an upper
  bound of what calibration saw, overstates the spread of a quiet device. A profile too
  fast or too slow moves every p_complete towards the wrong outcome, so it shows as a
  positive z, never a negative one.
A profile 1.3 times too fast puts its sessions 23 % from the prediction, outside
intervals as narrow as a quiet device's and beyond a session_cv below 0.2, so it fails
at 40 sessions; a calibrated profile of a quiet device covers about 90 %. A device that
varies by more than that (a session_cv of 0.26 or more) cannot tell a profile 1.3 times
off from its own spread, and says so by passing it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from scipy import stats

from edgetwin.hil.replay.decisions import measured_compute_s

MIN_SESSIONS = 20  # timed sessions below which the verdict is inconclusive
MIN_UNSURE = 5  # sessions with 0.02 < p_complete < 0.98 the calibration test needs
LEVEL = 0.01  # each test's significance level
SURE = 0.02  # p_complete this close to 0 or 1: the twin is sure
Z_LIMIT = 2.326  # z beyond this: the probabilities lean the wrong way (1 %, one-sided)
Z_90 = 1.645  # half-width of the stated 90 % interval, in session_cv


@dataclass(frozen=True)
class Scores:
    sessions: int  # replayed with measured times
    covered: int
    brier: float | None
    brier_expected: float | None
    calibration_z: float | None
    unsure: int
    sure: int
    sure_flips: int
    bias: dict[str, float] | None
    session_cv: float  # the profiles' stated spread (the median over the sessions)

    def as_dict(self) -> dict[str, Any]:
        return {"interval_coverage_90": _r(self.covered / self.sessions if self.sessions
                                           else None),
                "interval_sessions": self.sessions, "brier": _r(self.brier),
                "brier_expected": _r(self.brier_expected),
                "calibration_z": _r(self.calibration_z, 3), "unsure_sessions": self.unsure,
                "sure_sessions": self.sure, "sure_flips": self.sure_flips, "bias": self.bias}


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(v, digits)


def scores(entries: list[dict[str, Any]], completed: dict[int, bool]) -> Scores:
    """The scores of replayed sessions; `completed[row]`: the outcome with measured figures
    is `completed`."""
    timed = [e for e in entries if not e["measured"].get("out_of_memory")]
    covered = sum(e["predicted"]["compute_p05_s"] <= measured_compute_s(e["measured"])
                  <= e["predicted"]["compute_p95_s"] for e in timed)
    p = [float(e["predicted"]["p_complete"]) for e in entries]
    y = [1.0 if completed[int(e["session"])] else 0.0 for e in entries]
    brier = statistics.fmean((pi - yi) ** 2 for pi, yi in zip(p, y, strict=True)) \
        if p else None
    expected = statistics.fmean(pi * (1 - pi) for pi in p) if p else None
    unsure = [(pi, yi) for pi, yi in zip(p, y, strict=True) if SURE < pi < 1 - SURE]
    var = sum((1 - 2 * pi) ** 2 * pi * (1 - pi) for pi, _ in unsure)
    z = sum((yi - pi) * (1 - 2 * pi) for pi, yi in unsure) / math.sqrt(var) \
        if var > 0 else None
    sure = [(pi, yi) for pi, yi in zip(p, y, strict=True) if not SURE < pi < 1 - SURE]
    flips = sum((pi >= 0.5) != (yi >= 0.5) for pi, yi in sure)
    cvs = [float(e["predicted"].get("session_cv") or 0.0) for e in timed]
    return Scores(len(timed), covered, brier, expected, z, len(unsure), len(sure), flips,
                  bias(timed), statistics.median(cvs) if cvs else 0.0)


def bias(timed: list[dict[str, Any]]) -> dict[str, float] | None:
    """The step time's mean signed error with its 95 % interval."""
    errors = [e["predicted"]["step_s"] / e["measured"]["median_step_s"] - 1 for e in timed]
    if len(errors) < 2:
        return None
    mean = statistics.fmean(errors)
    half = float(stats.t.ppf(0.975, len(errors) - 1)) * statistics.stdev(errors) / \
        math.sqrt(len(errors))
    return {"mean": round(mean, 4), "low": round(mean - half, 4), "high": round(mean + half, 4),
            "sessions": len(errors)}


def verdict(s: Scores) -> tuple[str, list[str]]:
    """`consistent`, `inconsistent` or `inconclusive`, and the reasons, a sentence each."""
    if s.sessions < MIN_SESSIONS:
        return "inconclusive", [f"only {s.sessions} sessions were timed on the devices; the "
                                f"verdict needs {MIN_SESSIONS} (replay more with --sample)"]
    failed, passed = [], []
    p_cover = float(stats.binom.cdf(s.covered, s.sessions, 0.90))
    line = (f"the 90 % intervals cover {s.covered} of {s.sessions} sessions "
            f"({s.covered / s.sessions:.0%}")
    if p_cover < LEVEL:
        failed.append(f"{line}; so few has probability {p_cover:.2g} if they held)")
    else:
        passed.append(f"{line})")
        if float(stats.binom.sf(s.covered - 1, s.sessions, 0.90)) < LEVEL:
            passed.append("the intervals are wider than they need be (the profile's "
                          "session_cv overstates the spread)")
    if s.sure:
        p_flip = float(stats.binom.sf(s.sure_flips - 1, s.sure, SURE)) if s.sure_flips else 1.0
        line = f"{s.sure_flips} of {s.sure} decisions the twin was sure of flipped"
        (failed if p_flip < LEVEL else passed).append(line)
    if s.calibration_z is not None and s.unsure >= MIN_UNSURE:
        line = (f"p_complete over the {s.unsure} sessions the twin was unsure of: "
                f"calibration z = {s.calibration_z:+.2f}")
        if s.calibration_z > Z_LIMIT:
            failed.append(f"{line} (beyond +{Z_LIMIT}: outcomes fall against the side the "
                          "probabilities lean to)")
        elif s.calibration_z < -Z_LIMIT:
            passed.append(f"{line} (below -{Z_LIMIT}: the probabilities are less sure than "
                          "they need be; the profile's session_cv overstates the spread)")
        else:
            passed.append(line)
    if s.bias is not None:
        b = s.bias
        line = (f"step time mean signed error {b['mean']:+.1%} (95 % interval "
                f"{b['low']:+.1%} to {b['high']:+.1%})")
        reach = Z_90 * s.session_cv
        if b["low"] > reach or b["high"] < -reach:
            failed.append(f"{line}: wholly beyond the stated 90 % interval's reach "
                          f"(+-{reach:.1%}, session_cv {s.session_cv:.1%})")
        else:
            (failed if failed else passed).append(line)
    return ("inconsistent" if failed else "consistent"), failed + passed
