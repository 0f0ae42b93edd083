"""NVIDIA NVML total-energy counter (millijoules since the driver loaded), via pynvml."""

from __future__ import annotations

from typing import Any


class NvmlEnergy:
    """Energy of one GPU between two readings of `nvmlDeviceGetTotalEnergyConsumption`."""

    def __init__(self, nvml: Any, index: int = 0) -> None:
        self.nvml = nvml
        nvml.nvmlInit()
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)

    @classmethod
    def find(cls) -> NvmlEnergy | None:
        try:
            import pynvml  # type: ignore[import-not-found]

            return cls(pynvml)
        except Exception:  # no library, no driver, no GPU: no meter
            return None

    def read_mj(self) -> int:
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    @staticmethod
    def energy_j(start_mj: int, end_mj: int) -> float:
        if end_mj < start_mj:
            raise ValueError("NVML energy counter went backwards (driver reloaded?)")
        return (end_mj - start_mj) / 1000.0
