"""The files a scenario names, copied into its run folder, so that the folder's
scenario.resolved.yaml runs again from there and gives the same bytes.

Profiles given as YAML paths, the model's config.json, and the network and availability
traces are copied under `inputs/` and the scenario names them there; the attached
devices of `validation.devices` are named by absolute path (they are machines, not data).
Shipped profiles and catalogue models are named as they are: the run's record keeps the
profiles' hashes, and a changed profile is a warning when the run is loaded.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from edgetwin.emulator.config import Scenario
from edgetwin.profiles.models import CATALOGUE
from edgetwin.profiles.modes import split_mode

INPUTS = "inputs"


def named_files(s: Scenario, base: Path) -> list[Path]:
    """The files (and model folders) `s` names, as paths."""
    files = [split_mode(g.profile)[0] for g in s.fleet.groups]
    paths = [base / f for f in files if Path(f).suffix in (".yaml", ".yml")]
    paths += [base / g.network.trace.file for g in s.fleet.groups if g.network.trace]
    if s.workload.model not in CATALOGUE and (base / s.workload.model).exists():
        paths.append(base / s.workload.model)
    if s.availability.trace is not None:
        paths.append(base / s.availability.trace)
    if s.validation is not None:
        paths.append(base / s.validation.devices)
    return paths


def pin_inputs(s: Scenario, base: Path, out: Path,
               sources: dict[str, str] | None = None) -> Scenario:
    """Copy the files `s` names (relative to `base`) into `out/inputs/` and return the
    scenario naming the copies, relative to `out`; `sources`, if given, gets each copy's
    path mapped to its original (so an error in a copy names the user's file)."""
    copier = _Copier(base, out)
    groups = []
    for g in s.fleet.groups:
        file, mode = split_mode(g.profile)
        if Path(file).suffix in (".yaml", ".yml"):
            pinned = copier.file(file) + (f"@{mode}" if mode else "")
            g = dataclasses.replace(g, profile=pinned)
        if g.network.trace is not None:
            trace = dataclasses.replace(g.network.trace, file=copier.file(g.network.trace.file))
            g = dataclasses.replace(g, network=dataclasses.replace(g.network, trace=trace))
        groups.append(g)
    s = dataclasses.replace(s, fleet=dataclasses.replace(s.fleet, groups=tuple(groups)))
    model = s.workload.model
    if model not in CATALOGUE and (base / model).exists():
        s = dataclasses.replace(s, workload=dataclasses.replace(s.workload,
                                                                model=copier.model(model)))
    if s.availability.trace is not None:
        s = dataclasses.replace(s, availability=dataclasses.replace(
            s.availability, trace=copier.file(s.availability.trace)))
    if s.validation is not None:
        s = dataclasses.replace(s, validation=dataclasses.replace(
            s.validation, devices=str((base / s.validation.devices).resolve())))
    if sources is not None:
        sources.update({str(out / rel): str(src) for src, rel in copier.done.items()})
    return s


class _Copier:
    """Copies each source once, under a name of its own in `out/inputs/`."""

    def __init__(self, base: Path, out: Path) -> None:
        self.base = base
        self.out = out
        self.done: dict[Path, str] = {}

    def file(self, name: str) -> str:
        src = (self.base / name).resolve()
        if src not in self.done:
            rel = self._free(src.name)
            (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, self.out / rel)
            self.done[src] = rel
        return self.done[src]

    def model(self, name: str) -> str:
        """A model folder is copied as its config.json; a config file as itself."""
        src = (self.base / name).resolve()
        if src.is_file():
            return self.file(name)
        if src not in self.done:
            rel = self._free(src.name)
            (self.out / rel).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / "config.json", self.out / rel / "config.json")
            self.done[src] = rel
        return self.done[src]

    def _free(self, name: str) -> str:
        taken = set(self.done.values())
        rel, n = f"{INPUTS}/{name}", 1
        while rel in taken:
            n += 1
            stem, dot, ext = name.partition(".")
            rel = f"{INPUTS}/{stem}-{n}{dot}{ext}"
        return rel
