"""The statistics of a sweep: per setting, the mean of a metric over its seeds with a
95 % confidence interval (Student's t), and the difference of two settings with its
interval, paired by seed where both ran the same seeds (every setting of a sweep sees
the same fleets and events for a seed, so pairing removes most of the noise)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import stdtrit

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    mean: float
    half_width: float  # of the 95 % interval; NaN with fewer than two values
    n: int  # the values it rests on (for a difference of unpaired samples, the fewer)

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def estimate(values: list[float]) -> Estimate:
    """The mean of `values` (NaNs left out) and the half-width of its 95 % interval."""
    xs = [v for v in values if not math.isnan(v)]
    n = len(xs)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    mean = sum(xs) / n
    if n < 2:
        return Estimate(mean, math.nan, n)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Estimate(mean, _t(n - 1) * sd / math.sqrt(n), n)


@dataclass(frozen=True)
class Difference:
    """B minus A, with its interval, also relative to A's mean."""

    a: Estimate
    b: Estimate
    diff: Estimate
    paired: bool

    @property
    def relative(self) -> float:
        return self.diff.mean / self.a.mean if self.a.mean else math.nan

    @property
    def relative_half_width(self) -> float:
        return self.diff.half_width / abs(self.a.mean) if self.a.mean else math.nan

    @property
    def significant(self) -> bool:
        """The interval leaves out zero."""
        return not math.isnan(self.diff.half_width) and (self.diff.low > 0 or self.diff.high < 0)


def difference(a: dict[int, float], b: dict[int, float]) -> Difference:
    """B - A over seeds: paired where both ran the same seeds, else Welch's interval."""
    ea, eb = estimate(list(a.values())), estimate(list(b.values()))
    common = [s for s in a if s in b and not math.isnan(a[s]) and not math.isnan(b[s])]
    if common and len(common) == ea.n == eb.n:
        return Difference(ea, eb, estimate([b[s] - a[s] for s in common]), True)
    return Difference(ea, eb, _welch(list(a.values()), list(b.values())), False)


def _welch(a: list[float], b: list[float]) -> Estimate:
    xa = [v for v in a if not math.isnan(v)]
    xb = [v for v in b if not math.isnan(v)]
    if len(xa) < 2 or len(xb) < 2:
        mean = (sum(xb) / len(xb) - sum(xa) / len(xa)) if xa and xb else math.nan
        return Estimate(mean, math.nan, min(len(xa), len(xb)))
    ma, mb = sum(xa) / len(xa), sum(xb) / len(xb)
    va = sum((x - ma) ** 2 for x in xa) / (len(xa) - 1) / len(xa)
    vb = sum((x - mb) ** 2 for x in xb) / (len(xb) - 1) / len(xb)
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(mb - ma, 0.0, min(len(xa), len(xb)))
    dof = (va + vb) ** 2 / (va ** 2 / (len(xa) - 1) + vb ** 2 / (len(xb) - 1))
    return Estimate(mb - ma, _t(dof) * se,
                    min(len(xa), len(xb)))


def _t(dof: float) -> float:
    """Student's t quantile of the two-sided interval at LEVEL."""
    return float(stdtrit(dof, 0.5 + LEVEL / 2))

