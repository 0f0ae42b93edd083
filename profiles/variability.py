"""How much a device's sessions vary: lognormal factors of mean 1.

A profile states `compute.session_cv`, the coefficient of variation of one session's
mean step time around the prediction on that device. The emulator draws each
session's factor from this distribution; the cross-check scores the intervals and
probabilities it implies. Mean 1, so the prediction stays the expected value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin.common.arrays import F64


def sigma(cv: npt.ArrayLike) -> Any:
    """The log-space standard deviation of a lognormal of mean 1 and this cv."""
    return np.sqrt(np.log1p(np.square(np.asarray(cv, dtype=np.float64))))


def from_uniform(u: npt.ArrayLike, cv: npt.ArrayLike) -> F64:
    """Factors (mean 1, coefficient of variation `cv`) at the uniforms `u` in (0, 1)."""
    from scipy.special import ndtri

    s = sigma(cv)
    out: F64 = np.exp(s * ndtri(np.asarray(u, dtype=np.float64)) - 0.5 * s * s)
    return out


def quantile(p: float, cv: npt.ArrayLike) -> F64:
    """The factor below which a share `p` of sessions fall."""
    return from_uniform(np.full(np.shape(cv), p), cv)


def prob_at_most(x: npt.ArrayLike, cv: npt.ArrayLike) -> F64:
    """P(factor <= x); with cv 0, 1 where x >= 1 and 0 below."""
    from scipy.special import ndtr

    x = np.asarray(x, dtype=np.float64)
    s = np.broadcast_to(sigma(cv), x.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.log(np.maximum(x, 0.0)) + 0.5 * s * s) / s
    out: F64 = np.where(s > 0, ndtr(np.nan_to_num(z, nan=-np.inf)),
                        (x >= 1.0).astype(np.float64))
    return out


def range_cv(low: float, high: float, devices: int) -> float:
    """A coefficient of variation from the range of `devices` measurements (the range
    over the expected range of a normal sample of that size, d2), relative to the
    midpoint: how published min-max ranges become a cv."""
    d2 = {2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326, 6: 2.534, 7: 2.704, 8: 2.847, 9: 2.970,
          10: 3.078}[devices]
    return (high - low) / d2 / (0.5 * (low + high))
