"""Every scenario key is documented, and every shipped scenario uses only real keys."""

from __future__ import annotations

import dataclasses
import shutil
import typing
from pathlib import Path

import pytest

from edgetwin.common.errors import InputError
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.dist import Dist
from edgetwin.emulator.scenario import load_scenario

from .emulator_helpers import SCENARIOS
from .hil_helpers import with_standin_profiles

DOC = Path(__file__).resolve().parents[1] / "docs" / "scenarios.md"


def _fields(cls: type, seen: set[type]) -> set[str]:
    names: set[str] = set()
    if cls in seen or cls is Dist:
        return names
    seen.add(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.metadata.get("internal"):
            continue
        names.add(f.metadata.get("key", f.name))
        for arg in (typing.get_type_hints(cls)[f.name], *typing.get_args(
                typing.get_type_hints(cls)[f.name])):
            inner = typing.get_args(arg) or (arg,)
            for t in inner:
                if dataclasses.is_dataclass(t) and isinstance(t, type):
                    names |= _fields(t, seen)
    return names


def test_every_key_is_in_the_reference() -> None:
    text = DOC.read_text()
    missing = sorted(n for n in _fields(Scenario, set()) if f"`{n}`" not in text)
    assert not missing, f"undocumented scenario keys: {missing}"


def test_shipped_scenarios_load(tmp_path: Path) -> None:
    for path in SCENARIOS.glob("*.yaml"):
        if "calibrated/" not in path.read_text():
            assert load_scenario(path).name
            continue
        # a scenario over profiles calibrated where it runs: refused in one line until they
        # exist, loaded once they do (stand-ins here)
        bare = tmp_path / "bare" / path.name
        bare.parent.mkdir()
        bare.write_text(path.read_text())
        shutil.copytree(SCENARIOS / "models", bare.parent / "models")
        with pytest.raises(InputError, match="calibrate the device that stands for it"):
            load_scenario(bare)
        assert load_scenario(with_standin_profiles(path, tmp_path)).name
