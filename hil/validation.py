"""Periodic validation: a scenario's `validation` section makes `edgetwin simulate`
replay a sample of every K-th round on the attached devices while the run goes on.

Each validated round adds a row per device to validation.csv: the sessions replayed,
the predicted and measured step time (medians), the error, and the share of
sessions whose outcome holds with the measured figures. With `recalibrate: true`
the group's step time is corrected by what its devices measured, for the rest of
the run; the corrections are recorded in scenario.resolved.yaml. The run's results
then depend on the hardware, which is the point: the seed alone no longer fixes them.
"""

from __future__ import annotations

import csv
import itertools
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from emulator.config import Scenario
from emulator.engine import Engine, RoundRow
from emulator.observer import F64, Observer
from emulator.scenario import resolve_profile
from emulator.session import STATUSES, Outcome, Planned
from hil.crosscheck import decision_with
from hil.inventory import Device, load_inventory
from hil.link import AgentError, AgentLink
from hil.remote_bench import connect
from hil.replay import replay_session
from hil.runsessions import RunSession
from hil.transports import LinkError
from profiles.errors import InputError

COLUMNS = ("round", "device", "group", "sessions", "predicted_step_s", "measured_step_s",
           "error", "decision_agreement", "step_factor")


class PeriodicValidation(Observer):
    def __init__(self, scenario: Scenario, base: Path,
                 log: Callable[[str], None] | None = None) -> None:
        v = scenario.validation
        assert v is not None
        self.every, self.sample, self.recalibrate = v.every_rounds, v.sample, v.recalibrate
        self.inventory = load_inventory(base / v.devices)
        self.classes = self.inventory.by_profile_name()
        names = [resolve_profile(g.profile, base).name for g in scenario.fleet.groups]
        if not set(names) & set(self.classes):
            raise InputError(scenario.source or "scenario", "validation.devices",
                             f"no device of {v.devices} stands for a group's profile (groups: "
                             f"{', '.join(names)}; devices stand for: "
                             f"{', '.join(sorted(self.classes)) or 'nothing yet'})")
        self.turn: dict[str, Iterator[Device]] = {k: itertools.cycle(d)
                                                  for k, d in self.classes.items()}
        self.links: dict[str, AgentLink] = {}
        self.rows: list[dict[str, Any]] = []
        self.corrections: list[dict[str, Any]] = []
        self.log = log or (lambda line: print(f"edgetwin: {line}", file=sys.stderr))

    def round_closed(self, engine: Engine, row: RoundRow, p: Planned, o: Outcome, cut_s: F64,
                     cut_status: int) -> None:
        if (row.round + 1) % self.every:
            return
        f, model = engine.fleet, engine.model
        eligible = [i for i in range(len(p.client))
                    if f.profiles[int(f.group[p.client[i]])].name in self.classes]
        if not eligible:
            return
        rng = engine.streams.keyed_generator("validation", row.round)
        picks = sorted(int(i) for i in rng.choice(eligible, min(self.sample, len(eligible)),
                                                  replace=False))
        by_device: dict[tuple[str, int], list[tuple[float, float, bool]]] = {}
        for i in picks:
            c = int(p.client[i])
            k = int(f.cost_index[c])
            s = RunSession(row=-1, client=c, group=int(f.group[c]), round=row.round,
                           planned=p, index=i, cut_s=float(cut_s[i]), cut_status=cut_status,
                           status=int(o.status[i]), cost=f.costs[k],
                           local_steps=int(f.local_steps[c]))
            device = next(self.turn[f.profiles[s.group].name])
            try:
                measured = replay_session(self._link(device), device, s)
            except (LinkError, AgentError) as err:
                self.log(f"validation of round {row.round}: {err}")
                self._drop(device)
                continue
            agree = decision_with(model, s, measured) == STATUSES[s.status]
            by_device.setdefault((device.name, s.group), []).append(
                (float(model.costs.step_s[k]), float(measured["median_step_s"]), agree))
        self._rows(engine, row.round, by_device)

    def _rows(self, engine: Engine, rnd: int,
              by_device: dict[tuple[str, int], list[tuple[float, float, bool]]]) -> None:
        factors: dict[int, list[float]] = {}
        for (device, group), got in sorted(by_device.items()):
            predicted = statistics.median(p for p, _, _ in got)
            measured = statistics.median(m for _, m, _ in got)
            factors.setdefault(group, []).extend(m / p for p, m, _ in got)
            self.rows.append({"round": rnd, "device": device,
                              "group": engine.fleet.groups[group].name, "sessions": len(got),
                              "predicted_step_s": round(predicted, 4),
                              "measured_step_s": round(measured, 4),
                              "error": round(predicted / measured - 1, 4),
                              "decision_agreement": round(sum(a for *_, a in got) / len(got), 4),
                              "step_factor": ""})
        if not self.recalibrate:
            return
        for group, ratios in sorted(factors.items()):
            factor = statistics.median(ratios)
            costs = engine.model.costs
            costs.step_s[costs.group == group] *= factor
            self.corrections.append({"round": rnd, "group": engine.fleet.groups[group].name,
                                     "step_factor": round(factor, 4)})
            for r in self.rows:
                if r["round"] == rnd and r["group"] == engine.fleet.groups[group].name:
                    r["step_factor"] = round(factor, 4)

    def _link(self, device: Device) -> AgentLink:
        if device.name not in self.links:
            self.links[device.name] = connect(device)
        return self.links[device.name]

    def _drop(self, device: Device) -> None:
        link = self.links.pop(device.name, None)
        if link is not None:
            link.close()

    def finish(self, out: Path) -> dict[str, Any]:
        with (out / "validation.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(self.rows)
        return {"validation_corrections": self.corrections} if self.recalibrate else {}

    def close(self) -> None:
        for name in list(self.links):
            self.links.pop(name).close()
