"""Fitting per-op-kind cost models to measurements, and scoring them on held-out shapes.

Each group of measurements (an op kind, split by phase where the phases behave
differently) gets the profile's roofline form: per-launch overhead, a throughput
and a bandwidth, and for contractions the dimensions at which efficiency halves.
Parameters are fitted in log space to relative error; every fifth case (by a hash
of its id, so the split does not depend on order) is held out for scoring (a small
group still holds out one or two), then the final fit uses all of them.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from edgetwin.calibration.bounds import Bounds, physical_bounds
from edgetwin.calibration.trace import Measurement
from edgetwin.profiles.device import OpCost

CONTRACTIONS = ("matmul", "attention")
BY_PHASE = ("attention", "norm", "activation", "embedding", "cross_entropy", "elementwise")
BY_IMPL = ("norm", "activation", "elementwise", "optimizer")
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


@dataclass(frozen=True)
class FitScore:
    """Relative errors on held-out measurements."""

    mape_pct: float
    rmspe_pct: float
    within_5pct: float
    within_10pct: float
    n_train: int
    n_test: int

    def as_dict(self) -> dict[str, float]:
        """For provenance: empty when nothing could be held out."""
        if not self.n_test:
            return {}
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class GroupFit:
    key: str
    cost: OpCost
    score: FitScore
    at_bound: tuple[str, ...] = ()  # parameters the final fit left at a physical bound


PRECISION_MARK = "@"  # `matmul@bf16`: a product's other precision, folded into matmul's


def group_key(m: Measurement) -> str:
    """The profile entry a measurement informs (see DeviceProfile.op_cost's lookup); a
    product in another precision than fp32 is its own group, `matmul@bf16`."""
    impl = m.case.split("/")[1] if m.case.count("/") >= 3 else ""
    if m.op == "matmul" and impl.startswith("mm_"):
        return f"matmul{PRECISION_MARK}{impl.removeprefix('mm_')}"
    if m.op in BY_IMPL and impl:
        return f"{m.op}.{impl}" if m.op == "optimizer" else f"{m.op}.{impl}.{m.phase}"
    if m.op in BY_PHASE:
        return f"{m.op}.{m.phase}"
    return m.op


MIN_TRAIN = 3  # a fit keeps at least this many shapes to fit on
MIN_TO_HOLD_OUT = 4  # below this many shapes a group holds none out, and says so


def _rank(case: str) -> int:
    return int(hashlib.sha256(case.encode()).hexdigest(), 16)


def held_out(case: str) -> bool:
    return _rank(case) % 5 == 0


def split(ms: list[Measurement]) -> tuple[list[Measurement], list[Measurement]]:
    """Train and held-out shapes: every fifth case by its hash; a small group (a quick
    calibration's) still holds out one case, or two from eight on (its lowest hashes,
    so the split does not depend on order), while MIN_TRAIN stay to fit on."""
    train = [m for m in ms if not held_out(m.case)]
    test = [m for m in ms if held_out(m.case)]
    if test and len(train) >= MIN_TRAIN:
        return train, test
    if len(ms) < MIN_TO_HOLD_OUT:
        return ms, []
    wanted = 1 if len(ms) < 8 else 2
    ranked = sorted(ms, key=lambda m: _rank(m.case))
    chosen = {m.case for m in ranked[:wanted]}
    return [m for m in ms if m.case not in chosen], [m for m in ms if m.case in chosen]


def _predict(p: np.ndarray, f: np.ndarray, b: np.ndarray, k: np.ndarray,
             mkn: np.ndarray | None) -> np.ndarray:
    flops_rate, bw, overhead = np.exp(p[0]), np.exp(p[1]), np.exp(p[2])
    rate = np.full(f.shape, flops_rate)
    if mkn is not None:
        m0, k0, n0 = np.exp(p[3]), np.exp(p[4]), np.exp(p[5])
        rate = flops_rate / (1.0 + m0 / mkn[:, 0] + k0 / mkn[:, 1] + n0 / mkn[:, 2])
    else:
        bw = bw / (1.0 + np.exp(p[3]) / np.maximum(b, 1.0))
    out: np.ndarray = overhead * k + np.maximum(f / rate, b / bw)
    return out


def _arrays(ms: list[Measurement]) -> Arrays:
    f = np.array([m.flops for m in ms])
    b = np.array([m.bytes for m in ms])
    k = np.array([m.kernels for m in ms], dtype=float)
    t = np.array([m.latency_s.median for m in ms])
    mkn = None
    if ms and ms[0].op in CONTRACTIONS:
        mkn = np.array([(m.shape[0], m.shape[1], m.shape[2]) if m.op == "matmul"
                        else (m.shape[2], m.shape[4], m.shape[3]) for m in ms], dtype=float)
    return f, b, k, t, mkn


def _solve(ms: list[Measurement], bounds: Bounds | None = None) -> np.ndarray:
    f, b, k, t, mkn = _arrays(ms)
    contraction = mkn is not None
    start = [math.log(max(np.max(f / t), 1e6)), math.log(max(np.max(b / t), 1e6)),
             math.log(max(float(np.min(t)) / 4, 1e-8))]
    start += [math.log(8.0)] * 3 if contraction else [math.log(1e5)]

    def residual(p: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.log(_predict(p, f, b, k, mkn)) - np.log(t)
        return out

    lower = [math.log(1e5), math.log(1e5), math.log(1e-9)] + ([math.log(1e-3)] * 3
                                                              if contraction else [0.0])
    upper = [math.log(1e16), math.log(1e14), math.log(1.0)] + ([math.log(1e5)] * 3
                                                               if contraction else
                                                               [math.log(1e10)])
    if not np.any(f > 0):  # nothing to say about FLOP/s: pin it out of the way
        lower[0], upper[0], start[0] = math.log(1e15), math.log(1e16), math.log(3e15)
    if bounds is not None and bounds.min_overhead_s is not None and np.any(k > 0):
        lower[2] = min(math.log(bounds.min_overhead_s), upper[2] - 1e-3)
    if bounds is not None and bounds.max_bytes_per_s is not None:
        upper[1] = max(math.log(bounds.max_bytes_per_s), lower[1] + 1e-3)
    start = [min(max(s, lo + 1e-6), hi - 1e-6) for s, lo, hi in zip(start, lower, upper,
                                                                     strict=True)]
    result = least_squares(residual, np.array(start), bounds=(lower, upper), loss="soft_l1",
                           f_scale=0.1)
    return np.asarray(result.x)


def _at_bound(p: np.ndarray, ms: list[Measurement], bounds: Bounds | None) -> tuple[str, ...]:
    """The parameters a fit left (within 1 %) at a physical bound."""
    if bounds is None:
        return ()
    out = []
    k = np.array([m.kernels for m in ms])
    if bounds.min_overhead_s is not None and np.any(k > 0) and \
            abs(p[2] - math.log(bounds.min_overhead_s)) < 0.01:
        out.append("overhead_s")
    if bounds.max_bytes_per_s is not None and abs(p[1] - math.log(bounds.max_bytes_per_s)) < 0.01:
        out.append("bytes_per_s")
    return tuple(out)


def _cost(p: np.ndarray, contraction: bool, power_w: float) -> OpCost:
    return OpCost(flops_per_s=float(np.exp(p[0])), bytes_per_s=float(np.exp(p[1])),
                  overhead_s=float(np.exp(p[2])), busy_power_w=power_w,
                  m_half=float(np.exp(p[3])) if contraction else 0.0,
                  k_half=float(np.exp(p[4])) if contraction else 0.0,
                  n_half=float(np.exp(p[5])) if contraction else 0.0,
                  bytes_half=0.0 if contraction else float(np.exp(p[3])))


def score(p: np.ndarray, ms: list[Measurement], n_train: int) -> FitScore:
    if not ms:
        return FitScore(math.nan, math.nan, math.nan, math.nan, n_train, 0)
    f, b, k, t, mkn = _arrays(ms)
    rel = _predict(p, f, b, k, mkn) / t - 1.0
    return FitScore(mape_pct=float(np.mean(np.abs(rel)) * 100),
                    rmspe_pct=float(np.sqrt(np.mean(rel ** 2)) * 100),
                    within_5pct=float(np.mean(np.abs(rel) <= 0.05)),
                    within_10pct=float(np.mean(np.abs(rel) <= 0.10)),
                    n_train=n_train, n_test=len(ms))


def fit_groups(measurements: list[Measurement],
               power_w: dict[str, float]) -> dict[str, GroupFit]:
    """One fitted cost per group, scored on its held-out fifth, refitted on everything,
    each within the physical bounds the measurements themselves show."""
    bounds = physical_bounds(measurements)
    groups: dict[str, list[Measurement]] = defaultdict(list)
    for m in measurements:
        groups[group_key(m)].append(m)
    out: dict[str, GroupFit] = {}
    for key, ms in sorted(groups.items()):
        train, test = split(ms)
        p_train = _solve(train, bounds)
        s = score(p_train, test, len(train))
        p_all = _solve(ms, bounds)
        out[key] = GroupFit(key, _cost(p_all, ms[0].op in CONTRACTIONS,
                                       power_w.get(key.split(".")[0], 0.0)), s,
                            _at_bound(p_all, ms, bounds))
    # kind-level fallbacks for implementations nobody measured (rope, say)
    for kind in BY_IMPL:
        members = [f for k, f in out.items() if k.startswith(kind + ".")
                   and "fresh_pages" not in k]
        if "elementwise.add.forward" in out and kind == "elementwise":
            members = [out["elementwise.add.forward"]]  # the plain bandwidth-bound op
        if members and kind not in out:
            best = max(members, key=lambda f: f.score.n_train)
            out[kind] = GroupFit(kind, best.cost, best.score)
    return out


def residuals(fits: dict[str, GroupFit], measurements: list[Measurement]
              ) -> list[tuple[float, Measurement]]:
    """|relative error| of each measurement under the current fits, worst first."""
    out = []
    for m in measurements:
        fit = fits.get(group_key(m))
        if fit is None:
            continue
        c = fit.cost
        mkn = None
        if m.op == "matmul":
            mkn = (m.shape[0], m.shape[1], m.shape[2])
        elif m.op == "attention":
            mkn = (m.shape[2], m.shape[4], m.shape[3])
        pred = c.latency_s(m.flops, m.bytes, mkn, m.kernels)
        out.append((abs(pred / m.latency_s.median - 1.0), m))
    return sorted(out, key=lambda x: -x[0])
