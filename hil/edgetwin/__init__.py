"""edgetwin as a Python library: what the `edgetwin` command does, as functions that
return objects, so that a notebook can drive a study (docs/api.md).

    import edgetwin

    run = edgetwin.simulate("scenarios/quickstart.yaml", "runs/quickstart",
                            overrides={"orchestration.deadline_s": 600})
    run.summary["completed_sessions"], run.rounds["duration_s"].mean()

This package only names the API; it lives in `hil.api` (the layer that may use every
other), and is installed as the top-level package `edgetwin` (see pyproject.toml).
"""

from emulator.config import Scenario
from hil.api import (
    Calibration,
    Run,
    WorkloadPrice,
    calibrate,
    list_profiles,
    load_profile,
    load_run,
    load_scenario,
    price_workload,
    simulate,
    validate_profile,
)
from hil.api_sweep import Sweep, load_sweep, sweep
from profiles.costmodel import StepCost
from profiles.device import DeviceProfile
from profiles.errors import InputError
from profiles.version import package_version
from profiles.workload import Workload

__version__ = package_version()

__all__ = [
    "Calibration",
    "DeviceProfile",
    "InputError",
    "Run",
    "Scenario",
    "StepCost",
    "Sweep",
    "Workload",
    "WorkloadPrice",
    "__version__",
    "calibrate",
    "list_profiles",
    "load_profile",
    "load_run",
    "load_scenario",
    "load_sweep",
    "price_workload",
    "simulate",
    "sweep",
    "validate_profile",
]
