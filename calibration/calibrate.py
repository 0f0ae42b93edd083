"""`edgetwin calibrate`: measure the op suite on a bench, fit, write a profile.

The bench is this host or an attached device (edgetwin.calibration.bench). Every
measurement, probe step and host fact is appended to the trace as soon as it is
taken, so an interrupted calibration loses nothing and `--resume` carries on from
the trace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgetwin.calibration.bench import Bench, Plan
from edgetwin.calibration.fit import fit_groups, residuals
from edgetwin.calibration.load import LoadReading
from edgetwin.calibration.opsuite import Case, base_cases, neighbours, precision_cases
from edgetwin.calibration.trace import Measurement, TraceRecords, TraceWriter, read_records
from edgetwin.common.errors import InputError

Progress = Callable[[int, int, str], None]


def open_trace(trace_path: Path, resume: bool) -> TraceRecords:
    """What an earlier run of this calibration measured; refuses to overwrite one."""
    if trace_path.exists() and trace_path.stat().st_size and not resume:
        raise InputError(str(trace_path), "", "already holds measurements: pass --resume to "
                         "continue it, or choose another --trace")
    return read_records(trace_path) if trace_path.exists() else TraceRecords()


class BusyDevice(InputError):
    """The device was busy: a quick calibration refuses it unless allowed."""


def busy_before(reading: LoadReading, device: str) -> BusyDevice:
    return BusyDevice(device, "load", f"the device is busy: {reading.describe()}; a "
                      "calibration now would price every op too slow. Stop the other work, "
                      "or pass --allow-busy to calibrate it as it is (its profile says so)")


def run_calibration(bench: Bench, *, trace_path: Path, quick: bool, resume: bool,
                    progress: Progress | None = None, allow_busy: bool = False,
                    device: str = "device", warn: Callable[[str], None] | None = None
                    ) -> TraceRecords:
    """Measure the suite on `bench` into `trace_path` (resuming it if asked) and refine
    adaptively; returns every record of the trace. The device's load is read first and
    journaled: a quick calibration of a busy device is refused before anything is
    measured, unless `allow_busy`; a full one is warned of."""
    records = open_trace(trace_path, resume)
    reading = bench.load()
    if reading is not None:
        if reading.busy and quick and not allow_busy:
            raise busy_before(reading, device)
        if reading.busy and warn:
            warn(f"{device} is busy: {reading.describe()}; its profile will say so")
        with_load = TraceWriter(trace_path)
        with_load.write_record("load", phase="before", **reading.to_json())
        with_load.close()
        records.loads.append(("before", reading))
    plan = Plan.make(quick)
    done = records.measurements
    have = {m.case for m in done}
    # a GPU's caching allocator reuses its memory: no fresh pages to fault in
    gpu = bench.device.startswith("cuda")
    suite = base_cases(np.random.default_rng(0), quick)
    if gpu:  # and each of its other precisions (tensor cores)
        suite += precision_cases(np.random.default_rng(1), quick)
    todo = [c for c in suite if c.id not in have
            and not (gpu and c.impl == "fresh_pages")]
    writer = TraceWriter(trace_path)
    total = len(todo) + plan.refine_rounds * plan.refine_per_round
    count = [0]

    def record(m: Measurement) -> None:
        writer.write(m)
        done.append(m)
        have.add(m.case)
        count[0] += 1
        if progress:
            progress(count[0], total, m.case)

    try:
        bench.measure(todo, plan, record)
        for _ in range(plan.refine_rounds):
            fits = fit_groups(done, {})
            worst = [m for _, m in residuals(fits, done)][: max(1, plan.refine_per_round // 4)]
            extra: list[Case] = []
            for m in worst:
                case = _case_of(m)
                seed = int(hashlib.sha256(m.case.encode()).hexdigest()[:8], 16)
                extra += [c for c in neighbours(case, np.random.default_rng(seed), 4)
                          if c.id not in have]
            unique = list({c.id: c for c in extra}.values())[: plan.refine_per_round]
            bench.measure(unique, plan, record)
    finally:
        writer.close()
    return records


def _case_of(m: Measurement) -> Case:
    impl = m.case.split("/")[1]
    return Case(m.op, impl, m.phase, m.shape, m.flops, m.bytes, m.kernels)
