"""Distributions a scenario writes as mappings, drawn through their quantile functions
at keyed uniforms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edgetwin.common.errors import InputError

# each kind's keys: (required, optional); `dist` itself may be left out for a constant
_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "const": (("value",), ()),
    "uniform": (("low", "high"), ()),
    "normal": (("mean", "std"), ("low", "high")),
    "lognormal": (("mean", "cv"), ("low", "high")),
    "choice": (("values",), ("weights",)),
}


@dataclass(frozen=True)
class Dist:
    """`{dist: const, value: 5}`, `{dist: uniform, low: 1, high: 2}`,
    `{dist: normal, mean: 1, std: 0.1}`, `{dist: lognormal, mean: 80, cv: 0.5}`
    (mean and coefficient of variation of the values themselves), or
    `{dist: choice, values: [4, 8], weights: [0.5, 0.5]}`. `low`/`high` also clip
    normal and lognormal draws."""

    dist: Literal["const", "uniform", "normal", "lognormal", "choice"] = "const"
    value: float = 0.0
    low: float | None = None
    high: float | None = None
    mean: float = 0.0
    std: float = 0.0
    cv: float = 0.0
    values: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()

    @classmethod
    def from_scalar(cls, value: float) -> Dist:
        """A bare number in a scenario means a constant."""
        return cls("const", value=float(value))

    @classmethod
    def accepted_keys(cls, data: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The keys a mapping of this kind takes, so that `{dist: lognormal, std: 0.7}` is
        refused rather than read as cv 0 (schema.from_mapping asks)."""
        if "dist" not in data and set(data) - {"value"}:  # `{mean: 3}`: which kind?
            return ("dist",), tuple(cls.__dataclass_fields__)
        kind = str(data.get("dist", "const"))
        if kind not in _KEYS:  # the schema names the unknown kind
            return (), tuple(cls.__dataclass_fields__)
        required, optional = _KEYS[kind]
        return required, ("dist", *optional)

    def to_data(self) -> dict[str, Any]:
        """The mapping a scenario writes: the kind and only the keys it uses."""
        required, optional = _KEYS[self.dist]
        out: dict[str, Any] = {"dist": self.dist}
        for name in (*required, *optional):
            value = getattr(self, name)
            if value is not None and value != ():
                out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def check(self, where: str, key: str) -> None:
        if self.dist == "uniform" and (self.low is None or self.high is None
                                       or self.high < self.low):
            raise InputError(where, key, "uniform needs low <= high")
        if self.dist == "lognormal" and (self.mean <= 0 or self.cv < 0):
            raise InputError(where, key, "lognormal needs mean > 0 and cv >= 0")
        if self.dist == "normal" and self.std < 0:
            raise InputError(where, key, "normal needs std >= 0")
        if self.dist in ("normal", "lognormal") and self.low is not None \
                and self.high is not None and self.high < self.low:
            raise InputError(where, key, f"{self.dist} needs low <= high, got low {self.low:g} "
                             f"and high {self.high:g}")
        if self.dist == "choice":
            if not self.values:
                raise InputError(where, key, "choice needs values")
            if self.weights and len(self.weights) != len(self.values):
                raise InputError(where, f"{key}.weights", f"{len(self.weights)} weights for "
                                 f"{len(self.values)} values: give one weight per value")
            if self.weights and (abs(sum(self.weights) - 1) > 1e-6 or min(self.weights) < 0):
                raise InputError(where, f"{key}.weights", "must be >= 0 and sum to 1, got "
                                 f"{sum(self.weights):g}")

    def lower_bound(self) -> float:
        """The smallest value a draw can take (for range checks)."""
        if self.dist == "const":
            return self.value
        if self.dist == "choice":
            return min(self.values)
        if self.low is not None:
            return self.low
        return 0.0 if self.dist == "lognormal" else float("-inf")

    def upper_bound(self) -> float:
        """The largest value a draw can take (for range checks)."""
        if self.dist == "const":
            return self.value
        if self.dist == "choice":
            return max(self.values)
        if self.high is not None:
            return self.high
        return float("inf")

    def quantile(self, u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The draws at uniforms `u` in (0, 1) (the inverse of the distribution's CDF), so
        that a keyed uniform gives a client's value without drawing anyone else's."""
        if self.dist == "const":
            out = np.full(u.shape, self.value, dtype=np.float64)
        elif self.dist == "uniform":
            assert self.low is not None and self.high is not None
            out = self.low + (self.high - self.low) * u
        elif self.dist == "normal":
            out = self.mean + self.std * _ndtri(u)
        elif self.dist == "lognormal":
            sigma2 = np.log1p(self.cv ** 2)
            out = np.exp(np.log(self.mean) - sigma2 / 2 + np.sqrt(sigma2) * _ndtri(u))
        else:
            values = np.asarray(self.values, dtype=np.float64)
            if self.weights:
                edges = np.cumsum(self.weights)
                at = np.searchsorted(edges / edges[-1], u, side="right")
            else:
                at = (u * len(values)).astype(np.int64)
            out = values[np.minimum(at, len(values) - 1)]
        if self.dist in ("normal", "lognormal") and (self.low is not None or
                                                     self.high is not None):
            out = np.clip(out, self.low, self.high)
        return out


def _ndtri(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The standard normal's quantiles (scipy loaded only when a draw needs it)."""
    from scipy.special import ndtri

    return np.asarray(ndtri(u), dtype=np.float64)
