"""What the lower layers' commands ask of the attached-device layer, each loading the
device code only when used: the observer that replays a simulation's rounds on the
devices where its scenario has a `validation` section, and the bench of
`calibrate --device NAME --devices FILE`."""

from __future__ import annotations

from pathlib import Path

from edgetwin.calibration.commands import Target
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.observer import Observer


def validation_observer(scenario: Scenario, base: Path) -> Observer | None:
    """Periodic validation on attached devices, where the scenario has a section for it."""
    if scenario.validation is None:
        return None
    from edgetwin.hil.periodic import PeriodicValidation

    return PeriodicValidation(scenario, base)


def attached_target(device_name: str, devices: Path, out: Path | None = None,
                    name: str | None = None) -> Target:
    """`calibrate --device NAME --devices FILE`: the device's agent as the bench; the
    profile goes to `out`, or the device's profile file, named as that file is."""
    import sys

    from edgetwin.hil.attached_bench import AgentBench
    from edgetwin.hil.inventory import load_inventory

    device = load_inventory(devices).get(device_name)
    if out is None:
        out = device.profile_path if device.profile_path is not None else \
            Path(f"{device.name}.yaml")
    existing = device.load_profile() if device.profile_path is not None else None
    name = name or (existing.name if existing else out.stem)
    bench = AgentBench(device, f"{out.stem}.trace.jsonl",
                       log=lambda line: print(f"edgetwin: {line}", file=sys.stderr))
    return Target(bench, name, out)
