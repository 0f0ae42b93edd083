"""The training setup of one client: batch, precision, memory-saving options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edgetwin.common.errors import InputError

Dtype = Literal["fp32", "fp16", "bf16"]
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2}
Encoding = Literal["fp32", "fp16", "int8", "int4"]
ENCODING_BITS: dict[str, int] = {"fp32": 32, "fp16": 16, "int8": 8, "int4": 4}
Serialization = Literal["raw", "npy", "npy64"]


@dataclass(frozen=True)
class Sharding:
    """MobileFineTuner-style parameter sharding.

    Frozen weights beyond `budget_mb` are evicted (least recently used first) and kept
    encoded as `encoding`, in RAM or on flash; every forward and backward pass brings
    each evicted weight back, which costs storage reads (flash) and a decode pass.
    """

    budget_mb: float = 512.0
    encoding: Encoding = "fp16"
    store: Literal["ram", "flash"] = "flash"


@dataclass(frozen=True)
class EnergyAwareSleep:
    """MobileFineTuner's inter-step sleep, as published in its power monitor.

    The trainer sleeps 1000/f ms between optimizer steps (at most `max_sleep_ms`), with
    f = min(f_battery, f_temperature), each `low_hz` past its threshold, else `high_hz`.
    """

    battery_threshold_pct: float = 20.0
    temperature_threshold_c: float = 42.0
    high_hz: float = 2.0
    low_hz: float = 0.5
    max_sleep_ms: float = 5000.0

    def sleep_s(self, battery_pct: npt.ArrayLike, temperature_c: npt.ArrayLike) -> Any:
        """The sleep after one step, for one device (floats) or many (arrays) alike."""
        f_battery = np.where(np.asarray(battery_pct) < self.battery_threshold_pct,
                             self.low_hz, self.high_hz)
        f_temp = np.where(np.asarray(temperature_c) > self.temperature_threshold_c,
                          self.low_hz, self.high_hz)
        return np.minimum(1000.0 / np.minimum(f_battery, f_temp), self.max_sleep_ms) / 1000.0


@dataclass(frozen=True)
class TrainingSetup:
    """One optimizer step is `grad_accum` micro-batches of `batch` sequences of `seq` tokens."""

    batch: int = 1
    seq: int = 128
    grad_accum: int = 1
    dtype: Dtype = "fp32"
    # PyTorch AMP: products in this half precision, master weights, optimizer and the
    # reductions (norms, softmax, loss) in fp32; needs dtype fp32
    autocast: Literal["fp16", "bf16"] | None = None
    optimizer: Literal["adamw", "sgd"] = "adamw"
    activation_checkpointing: bool = False
    memory_efficient_attention: bool = False
    sharding: Sharding | None = None
    energy_aware_sleep: EnergyAwareSleep | None = None
    serialization: Serialization = "raw"

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def tokens(self) -> int:
        """Tokens in one micro-batch."""
        return self.batch * self.seq

    def validate(self, where: str = "setup") -> None:
        for key in ("batch", "seq", "grad_accum"):
            value = getattr(self, key)
            if not isinstance(value, int) or value <= 0:
                raise InputError(where, key, f"must be a positive integer, got {value!r}")
        if self.dtype not in DTYPE_BYTES:
            raise InputError(where, "dtype", f"expected fp32, fp16 or bf16, got {self.dtype!r}")
        if self.autocast is not None:
            if self.autocast not in ("fp16", "bf16"):
                raise InputError(where, "autocast",
                                 f"expected fp16 or bf16, got {self.autocast!r}")
            if self.dtype != "fp32":
                raise InputError(where, "autocast", "keeps fp32 master weights: it needs dtype "
                                 f"fp32, got {self.dtype}")
        if self.optimizer not in ("adamw", "sgd"):
            raise InputError(where, "optimizer", f"expected adamw or sgd, got {self.optimizer!r}")
        if self.serialization not in ("raw", "npy", "npy64"):
            raise InputError(where, "serialization",
                             f"expected raw, npy or npy64, got {self.serialization!r}")
        if self.sharding is not None:
            if self.sharding.budget_mb <= 0:
                raise InputError(where, "sharding.budget_mb",
                                 f"must be > 0, got {self.sharding.budget_mb}")
            if self.sharding.encoding not in ENCODING_BITS:
                raise InputError(where, "sharding.encoding", "expected fp32, fp16, int8 or "
                                 f"int4, got {self.sharding.encoding!r}")
            if self.sharding.store not in ("ram", "flash"):
                raise InputError(where, "sharding.store",
                                 f"expected ram or flash, got {self.sharding.store!r}")
