"""edgetwin as a Python library: what the `edgetwin` command does, as functions that
return objects, so that a script or a notebook can drive a study (docs/api.md).

    import edgetwin

    run = edgetwin.simulate("quickstart", "runs/quickstart",
                            overrides={"orchestration.deadline_s": 600})
    run.summary["completed_sessions"], run.rounds["duration_s"].mean()

Importing it loads nothing but this file: each name is looked up the first time it is
used (PEP 562), so `import edgetwin`, and a device's `python -m edgetwin.hil.agent`, stay
light. The library lives in `edgetwin.api` and `edgetwin.sweep_api`, over the layers
`edgetwin.profiles`, `edgetwin.calibration`, `edgetwin.emulator` and `edgetwin.hil`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names below are, for type checkers and readers
    from edgetwin.api import (
        Calibration,
        Run,
        WorkloadPrice,
        calibrate,
        list_profiles,
        list_scenarios,
        load_profile,
        load_run,
        load_scenario,
        price_workload,
        simulate,
        validate_profile,
    )
    from edgetwin.common.errors import InputError
    from edgetwin.emulator.config import Scenario
    from edgetwin.profiles.costmodel import StepCost
    from edgetwin.profiles.device import DeviceProfile
    from edgetwin.profiles.workload import Workload
    from edgetwin.sweep_api import Sweep, load_sweep, sweep

# each public name and the module that defines it
_WHERE = {
    "Calibration": "edgetwin.api", "Run": "edgetwin.run_api", "WorkloadPrice": "edgetwin.api",
    "calibrate": "edgetwin.api", "list_profiles": "edgetwin.api",
    "list_scenarios": "edgetwin.api", "load_profile": "edgetwin.api",
    "load_run": "edgetwin.run_api", "load_scenario": "edgetwin.api",
    "price_workload": "edgetwin.api", "simulate": "edgetwin.api",
    "validate_profile": "edgetwin.api",
    "Sweep": "edgetwin.sweep_api", "load_sweep": "edgetwin.sweep_api",
    "sweep": "edgetwin.sweep_api",
    "InputError": "edgetwin.common.errors", "Scenario": "edgetwin.emulator.config",
    "StepCost": "edgetwin.profiles.costmodel", "DeviceProfile": "edgetwin.profiles.device",
    "Workload": "edgetwin.profiles.workload",
}

__all__ = [
    "Calibration", "DeviceProfile", "InputError", "Run", "Scenario", "StepCost", "Sweep",
    "Workload", "WorkloadPrice", "__version__", "calibrate", "list_profiles",
    "list_scenarios", "load_profile", "load_run", "load_scenario", "load_sweep",
    "price_workload", "simulate", "sweep", "validate_profile",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from edgetwin.common.version import package_version

        return package_version()
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'edgetwin' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
