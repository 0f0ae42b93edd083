"""Every scenario key is documented, and every shipped scenario uses only real keys."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from emulator.dist import Dist
from emulator.scenario import Scenario, load_scenario

from .emulator_helpers import SCENARIOS

DOC = Path(__file__).resolve().parents[1] / "docs" / "scenarios.md"


def _fields(cls: type, seen: set[type]) -> set[str]:
    names: set[str] = set()
    if cls in seen or cls is Dist:
        return names
    seen.add(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        names.add(f.name.rstrip("_"))
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


def test_shipped_scenarios_load() -> None:
    for path in SCENARIOS.glob("*.yaml"):
        assert load_scenario(path).name
