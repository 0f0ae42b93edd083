"""The Python API that `import edgetwin` gives: what the `edgetwin` command does, as
functions that return objects, so that a notebook or a script can drive a study.

Each function is a thin layer over the one the command calls, so the two give the same
numbers; bad input raises `InputError`, which names the file or argument, the key and
what is wrong. docs/api.md is the reference, with an example its test runs.
"""

from __future__ import annotations

import dataclasses
import platform
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from edgetwin.common.errors import InputError
from edgetwin.emulator.config import Scenario
from edgetwin.profiles.costmodel import MIB, StepCost
from edgetwin.profiles.device import DeviceProfile
from edgetwin.profiles.schema import dump_yaml
from edgetwin.profiles.workload import Workload
from edgetwin.run_api import Run, load_run

if TYPE_CHECKING:  # calibration's code is loaded when a calibration runs
    from edgetwin.calibration.commands import Target
    from edgetwin.calibration.fit import GroupFit
    from edgetwin.calibration.trace import Measurement

__all__ = ["Calibration", "Run", "WorkloadPrice", "calibrate", "list_profiles", "list_scenarios",
           "load_profile", "load_run", "load_scenario", "price_workload", "simulate",
           "validate_profile"]

# `--set` overrides: {"orchestration.deadline_s": 900} or ["orchestration.deadline_s=900"]
Overrides = Mapping[str, Any] | Sequence[str] | None
END = "...\n"  # the document end YAML writes after a lone scalar


# --- scenarios and runs ---------------------------------------------------------------------
def load_scenario(path: str | Path, overrides: Overrides = None, *,
                  seed: int | None = None) -> Scenario:
    """A scenario YAML (or a shipped scenario's name) parsed, overridden and checked, as
    `edgetwin simulate` reads it: `overrides` are its `--set`s, `seed` its `--seed`."""
    from edgetwin.emulator.scenario import load_scenario as load

    return load(Path(path), set_items(overrides), seed)


def set_items(overrides: Overrides) -> list[str]:
    """Overrides as `--set` takes them; a mapping's values are written as YAML, so each
    reads back as the value given (the string "true" stays a string)."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise InputError("overrides", overrides, "expected a mapping or a list of "
                         "key=value strings, got one string")
    if not isinstance(overrides, Mapping):
        return [str(item) for item in overrides]
    items = []
    for key, value in overrides.items():
        try:
            text = dump_yaml(_plain(value), default_flow_style=True, width=1 << 30)
        except yaml.YAMLError:
            raise InputError("overrides", str(key), f"cannot be written as YAML: "
                             f"{value!r}") from None
        items.append(f"{key}={text.removesuffix(END).strip()}")
    return items


def _plain(value: Any) -> Any:
    """Tuples as lists and paths as strings: what YAML can write."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return str(value) if isinstance(value, Path) else value


def simulate(scenario: Scenario | str | Path, out: str | Path | None = None, *,
             seed: int | None = None, overrides: Overrides = None, plots: bool = True,
             overwrite: bool = False,
             progress: Callable[[int, float], None] | None = None,
             table_format: Literal["csv", "parquet"] = "csv") -> Run:
    """Run a scenario (a file, or what `load_scenario` returned) into the run folder
    `out`, as `edgetwin simulate` does; `out=None` makes a new temporary folder;
    `table_format="parquet"` writes the tables as Parquet (`--format parquet`)."""
    from edgetwin.emulator.output.simulate import simulate as run_simulation
    from edgetwin.hil.hooks import validation_observer

    if isinstance(scenario, Scenario):
        if overrides:
            raise InputError("simulate", "overrides", "apply them with load_scenario(path, "
                             "overrides), or pass the scenario's path")
        if seed is not None:
            scenario = dataclasses.replace(scenario, seed=seed)
    else:
        scenario = load_scenario(scenario, overrides, seed=seed)
    folder = Path(out) if out is not None else \
        Path(tempfile.mkdtemp(prefix=f"edgetwin-{scenario.name}-"))
    base = Path(scenario.source).parent if scenario.source else Path(".")
    observer = validation_observer(scenario, base)  # periodic validation, as the command
    try:
        output = run_simulation(scenario, folder, plots=plots, progress=progress,
                                observer=observer, overwrite=overwrite,
                                table_format=table_format)
    except InputError as err:
        raise _as_argument(err) from None
    finally:
        if observer is not None:
            observer.close()
    return Run(folder, scenario, output.summary, output.wall_s)


@dataclass(frozen=True, eq=False)
class WorkloadPrice:
    """One optimizer step of a model and method priced on one device profile: what
    `edgetwin workload --device` prints."""

    workload: Workload  # the device-independent step: ops, FLOPs, parameters, memory, bytes
    profile: DeviceProfile
    cost: StepCost  # time, energy and memory of the step on the profile

    @property
    def step_time_s(self) -> float:
        return self.cost.step_time_s

    @property
    def step_energy_j(self) -> float:
        return self.cost.step_energy_j

    @property
    def peak_memory_bytes(self) -> int:
        """The process's peak during a step on the device (runtime and heap included)."""
        return self.cost.peak_memory_bytes

    @property
    def fits_in_memory(self) -> bool:
        return self.cost.fits_in_memory

    @property
    def trainable_params(self) -> int:
        return self.workload.trainable_params

    @property
    def upload_bytes(self) -> int:
        """What a client sends each round (exact, in the wire format)."""
        return self.workload.payload.upload_bytes

    @property
    def download_bytes(self) -> int:
        return self.workload.payload.download_bytes

    def as_dict(self) -> dict[str, Any]:
        """What `edgetwin workload --json` prints for one device."""
        from edgetwin.profiles.commands import workload_json

        return workload_json(self.workload, [self.cost], [self.profile])

    def __repr__(self) -> str:
        fits = "fits" if self.fits_in_memory else "does not fit"
        return (f"WorkloadPrice({self.workload.model.name} {self.workload.method.kind} on "
                f"{self.profile.name}: {self.step_time_s:.3f} s, {self.step_energy_j:.1f} J, "
                f"peak {self.peak_memory_bytes / MIB:,.0f} MiB, {fits})")


def price_workload(model: str, device: str | Path | DeviceProfile, *,
                   method: Literal["full", "lora"] = "lora", lora_rank: int = 8,
                   lora_alpha: float | None = None,
                   lora_targets: str | Sequence[str] | None = None, lora_dropout: float = 0.0,
                   fedprox_mu: float = 0.0, split_layer: int | None = None, batch: int = 1,
                   seq: int = 128, grad_accum: int = 1,
                   dtype: Literal["fp32", "fp16", "bf16"] = "fp32",
                   autocast: Literal["fp16", "bf16"] | None = None,
                   optimizer: Literal["adamw", "sgd"] = "adamw",
                   activation_checkpointing: bool = False,
                   memory_efficient_attention: bool = False,
                   serialization: Literal["raw", "npy", "npy64"] = "raw",
                   shard_budget_mb: float | None = None,
                   shard_encoding: Literal["fp32", "fp16", "int8", "int4"] = "fp16",
                   shard_store: Literal["ram", "flash"] = "flash",
                   energy_aware_sleep: bool = False, battery_pct: float = 100.0,
                   temperature_c: float | None = None) -> WorkloadPrice:
    """The cost of one optimizer step (`grad_accum` micro-batches of `batch` x `seq`
    tokens) of `model` under `method` on the profile `device`, as `edgetwin workload`
    prices it; the options are its flags, with the same defaults."""
    from edgetwin.profiles.costmodel import predict_step
    from edgetwin.profiles.workload_spec import WorkloadSpec

    targets = tuple(t.strip() for t in (lora_targets.split(",") if isinstance(lora_targets, str)
                                        else lora_targets) if t.strip()) \
        if lora_targets is not None else None
    spec = WorkloadSpec(  # the spec the command builds from its flags, so both price alike
        model=model, batch=batch, seq=seq, method=method, lora_rank=lora_rank,
        lora_alpha=lora_alpha, lora_targets=targets, lora_dropout=lora_dropout,
        fedprox_mu=fedprox_mu, split_layer=split_layer, grad_accum=grad_accum, dtype=dtype,
        autocast=autocast, optimizer=optimizer,
        activation_checkpointing=activation_checkpointing,
        memory_efficient_attention=memory_efficient_attention, serialization=serialization,
        shard_budget_mb=shard_budget_mb, shard_encoding=shard_encoding,
        shard_store=shard_store, energy_aware_sleep=energy_aware_sleep)
    try:
        workload = spec.build()
        profile = device if isinstance(device, DeviceProfile) else load_profile(device)
    except InputError as err:
        raise _as_argument(err) from None
    cost = predict_step(profile, workload, battery_pct=battery_pct, temperature_c=temperature_c)
    return WorkloadPrice(workload, profile, cost)


def _as_argument(err: InputError) -> InputError:
    """An error that names a command-line flag (`--lora-rank`), naming the argument."""
    problem = err.problem.replace("--overwrite", "overwrite=True")
    if err.where.startswith("--"):
        return InputError(_argument(err.where), "",
                          f"{err.key}: {problem}" if err.key else problem)
    if err.key.startswith("--") or problem != err.problem:
        return InputError(err.where, _argument(err.key), problem)
    return err


def _argument(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A shipped device profile by name (see `list_profiles`), or a profile YAML by path."""
    from edgetwin.profiles.device import load_profile as load

    return load(str(name_or_path))


def validate_profile(path: str | Path) -> DeviceProfile:
    """A profile YAML checked as `edgetwin profiles validate` checks it: returned when it
    is sound, else an `InputError` naming the key."""
    from edgetwin.profiles.device import parse_profile
    from edgetwin.profiles.schema import load_yaml

    return parse_profile(load_yaml(Path(path)), str(path))


def list_scenarios() -> list[str]:
    """The names of the shipped scenarios: `simulate(name)` and `load_scenario(name)` run and
    read one (`edgetwin scenarios list` describes them)."""
    from edgetwin.emulator.catalogue import shipped

    return [s.name for s in shipped() if s.kind == "scenario"]


def list_profiles() -> list[str]:
    """The names of the shipped device profiles."""
    from edgetwin.profiles.device import shipped_profiles

    return sorted(shipped_profiles())


# --- calibration ----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Calibration:
    """A calibration's outcome: the profile, the files written, the op measurements and,
    on first use, the per-op fits with their held-out scores."""

    profile: DeviceProfile
    path: Path  # the profile YAML written
    trace: Path  # every measurement, appended as it was taken
    measurements: list[Measurement]

    @cached_property
    def fits(self) -> dict[str, GroupFit]:
        """Per op group (`matmul`, `norm.rmsnorm.forward`, ...): the fitted cost and
        its error on held-out shapes, the table `edgetwin calibrate` prints."""
        from edgetwin.calibration.fit import fit_groups

        return fit_groups(self.measurements, {})

    def __repr__(self) -> str:
        return (f"Calibration({self.profile.name!r} -> {str(self.path)!r}, "
                f"{len(self.measurements)} measurements)")


def calibrate(device: str = "local", *, out: str | Path | None = None, name: str | None = None,
              trace: str | Path | None = None, quick: bool = False, resume: bool = False,
              threads: int | None = None, devices: str | Path | None = None,
              from_trace: str | Path | None = None,
              progress: Callable[[int, int, str], None] | None = None) -> Calibration:
    """Measure a device into a profile YAML, as `edgetwin calibrate` does: this host's CPU
    ("local") or GPU ("cuda"), the attached device `device` of the inventory `devices`,
    or no device, fitting an existing trace (`from_trace`). Needs the `measure` extra."""
    from edgetwin.calibration.calibrate import run_calibration
    from edgetwin.calibration.profile_builder import build_profile, write_profile
    from edgetwin.calibration.trace import read_records

    if from_trace is not None:
        if devices is not None or device != "local":
            raise InputError("calibrate", "from_trace", "fits the trace alone: give no device")
        name = name or _host_profile_name()
        path = Path(out) if out is not None else Path(f"{name}.yaml")
        trace_path = Path(from_trace)
        records = read_records(trace_path)
        if not records.measurements:
            raise InputError(str(trace_path), "", "holds no measurements")
        profile = build_profile(name, records, trace_path, quick=False)
    else:
        target = _target(device, devices, out, name, threads)
        path = target.out
        trace_path = Path(trace) if trace is not None else \
            path.with_name(f"{path.stem}.trace.jsonl")
        try:
            records = run_calibration(target.bench, trace_path=trace_path, quick=quick,
                                      resume=resume, progress=progress)
            profile = build_profile(target.name, records, trace_path, quick=quick,
                                    bench=target.bench, progress=progress)
        finally:
            target.bench.close()
    write_profile(profile, path, f"Trace: {trace_path}.")
    return Calibration(profile, path, trace_path, records.measurements)


def _target(device: str, devices: str | Path | None, out: str | Path | None,
            name: str | None, threads: int | None) -> Target:
    """The bench, profile name and profile file of `calibrate`, as the command picks them."""
    from edgetwin.calibration.commands import Target

    if devices is not None:
        from edgetwin.hil.hooks import attached_target

        return attached_target(device, Path(devices), None if out is None else Path(out), name)
    if device not in ("local", "cuda"):
        raise InputError("calibrate", "device", f"expected local or cuda, or a device name "
                         f"with devices=DEVICES.yaml, got {device!r}")
    from edgetwin.calibration.bench import LocalBench

    name = name or _host_profile_name()
    return Target(LocalBench("cpu" if device == "local" else "cuda", threads), name,
                  Path(out) if out is not None else Path(f"{name}.yaml"))


def _host_profile_name() -> str:
    """The command's default name for this host's profile."""
    return f"local-{platform.node() or 'host'}"
