"""Periodic validation: a scenario's `validation` section makes `edgetwin simulate`
replay a sample of every K-th round on the attached devices while the run goes on.

Each validated round adds a row per device to validation.csv: the sessions replayed,
the predicted and measured step time (medians), the error, the share of sessions whose
outcome holds when the round is derived again with the measured figures
(`edgetwin.hil.replay.decisions`), and a control chart of the error: a round's mean log error is in
control while it stays within 3 standard errors of zero, the standard error being
the profile's own `compute.session_cv` over the square root of the sessions (2 % at
least). Only sessions a device can run as they were priced are sampled; a session that
runs out of memory on its device is that session's outcome, and the device stays
connected. With `recalibrate: true` a group's step time is corrected by what its
devices measured when its error leaves the control limits, for the rest of the run;
the corrections are recorded in scenario.resolved.yaml. The run's results then
depend on the hardware, which is the point: the seed alone no longer fixes them.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgetwin.common.arrays import F64
from edgetwin.common.errors import InputError
from edgetwin.emulator.config import Scenario
from edgetwin.emulator.engine import Engine
from edgetwin.emulator.observer import Observer
from edgetwin.emulator.rounds import RoundRow
from edgetwin.emulator.scenario import resolve_profile
from edgetwin.emulator.session import STATUSES, Outcome, Planned
from edgetwin.hil.agent.requests import not_replayable
from edgetwin.hil.attached_bench import connect
from edgetwin.hil.inventory import Device, load_inventory
from edgetwin.hil.link import AgentError, AgentLink
from edgetwin.hil.replay import decisions
from edgetwin.hil.replay.run import replay_session
from edgetwin.hil.replay.sessions import Batch, RunSession
from edgetwin.hil.transports import LinkError

COLUMNS = ("round", "device", "group", "sessions", "predicted_step_s", "measured_step_s",
           "error", "decision_agreement", "lower_limit", "upper_limit", "in_control",
           "step_factor")
CONTROL_SIGMAS = 3.0
MIN_CV = 0.02  # the least spread a control limit assumes (a profile that states none)


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

    def _runnable(self, s: RunSession, profile: str) -> Device | None:
        """The next device of the session's class that can run it as it was priced."""
        devices = self.classes.get(profile, [])
        for _ in range(len(devices)):
            d = next(self.turn[profile])
            if not_replayable(s.cost.workload, d.runner.kind) is None:
                return d
        return None

    def round_closed(self, engine: Engine, row: RoundRow, p: Planned, o: Outcome, cut_s: F64,
                     cut_status: int) -> None:
        if (row.round + 1) % self.every:
            return
        f = engine.fleet
        batch = Batch(p, np.asarray(cut_s, dtype=np.float64), cut_status,
                      np.full(len(p.client), row.round, dtype=np.int64), o.status, 0)
        # the group's step as the run now prices it (corrected by earlier validations)
        costs = [dataclasses.replace(c, step_s=float(engine.model.costs.step_s[k]),
                                     step_energy_j=c.busy_w * float(engine.model.costs.step_s[k]))
                 for k, c in enumerate(f.costs)]
        sessions = [RunSession(
            row=i, client=int(c), group=int(f.group[c]), round=row.round, batch=batch,
            index=i, status=int(o.status[i]), cost=costs[int(f.cost_index[c])],
            local_steps=int(f.local_steps[c]), timing_margin=math.inf, p_complete=0.0)
            for i, c in enumerate(p.client)]
        eligible = [s.row for s in sessions if f.profiles[s.group].name in self.classes and any(
            not_replayable(s.cost.workload, d.runner.kind) is None
            for d in self.classes[f.profiles[s.group].name])]
        if not eligible:
            return
        rng = engine.streams.keyed_generator("validation", row.round)
        picks = sorted(int(i) for i in rng.choice(eligible, min(self.sample, len(eligible)),
                                                  replace=False))
        entries: list[dict[str, Any]] = []
        for i in picks:
            s = sessions[i]
            device = self._runnable(s, f.profiles[s.group].name)
            if device is None:
                continue
            try:
                measured = replay_session(self._link(device), device, s)
            except AgentError as err:
                if err.code != "memory":
                    self.log(f"validation of round {row.round}: {err}")
                    continue
                measured = {"out_of_memory": True, "reason": str(err)}  # the link stays up
            except LinkError as err:
                self.log(f"validation of round {row.round}: {err}")
                self._drop(device)
                continue
            entries.append({"session": i, "device": device.name, "measured": measured})
        if entries:
            self._rows(engine, row.round, batch, sessions, entries)

    def _rows(self, engine: Engine, rnd: int, batch: Batch, sessions: list[RunSession],
              entries: list[dict[str, Any]]) -> None:
        factors = decisions.group_factors(sessions, entries)
        measured = {int(e["session"]): e["measured"] for e in entries}
        costs = decisions.batch_costs(engine.model, sessions, sessions, factors, measured)
        again = decisions.rederive_round(engine.model, engine.scenario.orchestration, batch,
                                         costs, fixed_cut=False)
        by_device: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for e in entries:
            by_device.setdefault((e["device"], sessions[e["session"]].group), []).append(e)
        for (device, group), got in sorted(by_device.items()):
            self._row(engine, rnd, device, group, got, sessions, again)

    def _row(self, engine: Engine, rnd: int, device: str, group: int,
             got: list[dict[str, Any]], sessions: list[RunSession], again: Any) -> None:
        name = engine.fleet.groups[group].name
        timed = decisions.timed(got)
        agree = [STATUSES[int(again[e["session"]])] == sessions[e["session"]].outcome
                 for e in got]
        row: dict[str, Any] = {"round": rnd, "device": device, "group": name,
                               "sessions": len(got), "predicted_step_s": "",
                               "measured_step_s": "", "error": "",
                               "decision_agreement": round(sum(agree) / len(agree), 4),
                               "lower_limit": "", "upper_limit": "", "in_control": "",
                               "step_factor": ""}
        self.rows.append(row)
        if not timed:
            return
        predicted = [sessions[e["session"]].cost.step_s for e in timed]
        measured = [float(e["measured"]["median_step_s"]) for e in timed]
        logs = [math.log(p / m) for p, m in zip(predicted, measured, strict=True)]
        cv = max(sessions[timed[0]["session"]].cost.session_cv, MIN_CV)
        limit = CONTROL_SIGMAS * math.sqrt(math.log1p(cv * cv)) / math.sqrt(len(logs))
        mean = statistics.fmean(logs)
        inside = abs(mean) <= limit
        row.update(predicted_step_s=round(statistics.median(predicted), 4),
                   measured_step_s=round(statistics.median(measured), 4),
                   error=round(math.expm1(mean), 4), lower_limit=round(math.expm1(-limit), 4),
                   upper_limit=round(math.expm1(limit), 4), in_control=int(inside))
        if self.recalibrate and not inside:
            factor = statistics.median(m / p for p, m in zip(predicted, measured, strict=True))
            costs = engine.model.costs
            costs.step_s[costs.group == group] *= factor
            self.corrections.append({"round": rnd, "group": name,
                                     "step_factor": round(factor, 4)})
            row["step_factor"] = round(factor, 4)

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
