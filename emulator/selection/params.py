"""Each selection policy's own parameters, as configuration (no implementations here):
the scenario's `selection` section holds one of each, and uses the named policy's."""

from __future__ import annotations

from dataclasses import dataclass

POLICY_NAMES = ("random", "deadline_aware", "battery_aware", "oort", "power_of_choice")


@dataclass(frozen=True)
class DeadlineAwareParams:
    safety: float = 0.9  # predicted duration must fit this share of the deadline


@dataclass(frozen=True)
class OortParams:
    alpha: float = 2.0  # straggler penalty: utility x (deadline / duration) ** alpha
    epsilon: float = 0.1  # share of slots given to never-selected clients at random


@dataclass(frozen=True)
class PowerOfChoiceParams:
    d: float = 3.0  # draw d x k candidates, keep the k with the highest loss
