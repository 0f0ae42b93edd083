"""Shared fixtures: where the project's reference measurements live."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the published figures the shipped reference profiles are built from and checked against
REFERENCE = ROOT / "profiles" / "reference" / "published_measurements.yaml"


@pytest.fixture(autouse=True)
def _quiet_library_warnings() -> None:
    # PEFT and transformers warn about Conv1D fan-in and deprecated names; not ours to fix.
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")

