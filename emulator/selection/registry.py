"""Selection policies by name, with the parameters the scenario gives each."""

from __future__ import annotations

from typing import Any

from edgetwin.emulator.config import SelectionConfig
from edgetwin.emulator.selection.policies import (
    Policy,
    battery_aware,
    deadline_aware,
    oort,
    power_of_choice,
    random_policy,
)

POLICIES: dict[str, Policy] = {
    "random": random_policy,
    "deadline_aware": deadline_aware,
    "battery_aware": battery_aware,
    "oort": oort,
    "power_of_choice": power_of_choice,
}


# whether a policy reads the clients' predicted costs (time, energy): only those can choose
# otherwise when the costs are corrected by what devices measured
READS_COSTS: dict[str, bool] = {
    "random": False,
    "deadline_aware": True,
    "battery_aware": True,
    "oort": True,
    "power_of_choice": False,
}


def policy_for(cfg: SelectionConfig) -> tuple[Policy, Any]:
    """The named policy and its parameters (None for a policy that takes none)."""
    return POLICIES[cfg.policy], getattr(cfg, cfg.policy, None)
