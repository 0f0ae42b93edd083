"""A run folder as the Python API gives it (`edgetwin.simulate`, `edgetwin.load_run`):
the scenario as it ran, its summary, and its tables as numpy columns or pandas frames."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from edgetwin.common.files import Table, read_json_object
from edgetwin.emulator.config import Scenario


@dataclass(frozen=True, eq=False)
class Run:
    """A run folder and what it holds: the scenario as it ran, the summary
    (summary.json), and the per-round and per-session tables (rounds.csv,
    client_sessions.csv) as numpy columns, read from the folder on first use."""

    folder: Path
    scenario: Scenario
    summary: dict[str, Any]
    wall_s: float  # the run's wall-clock time (run.json; NaN where the folder has none)

    @property
    def seed(self) -> int:
        """The root seed the run used (the scenario's, or the one drawn for it)."""
        return int(self.summary["seed"])

    @property
    def stop_reason(self) -> str:
        """Why the run ended: rounds, virtual_time, energy, traffic, done or interrupted."""
        return str(self.summary["stop_reason"])

    @cached_property
    def rounds(self) -> Table:
        """rounds.csv (or .parquet): one entry per round (or async aggregation), times in
        s, energy in J, bytes; `aggregated` is 1 or 0."""
        from edgetwin.emulator.output.tables import ROUNDS, read_run_table

        return read_run_table(self.folder, ROUNDS)

    @cached_property
    def sessions(self) -> Table:
        """client_sessions.csv (or .parquet): one entry per client session; `group` and
        `status` are labels, times in s (ms resolution), energy in J, memory in MiB,
        bytes."""
        from edgetwin.emulator.output.tables import SESSIONS, read_run_table

        return read_run_table(self.folder, SESSIONS)

    def to_pandas(self, table: Literal["sessions", "rounds"] = "sessions") -> Any:
        """The sessions (or the rounds) as a pandas DataFrame; `group`, `status` (and a
        Flower run's `kind`) as categories. Needs pandas: pip install 'edgetwin[analysis]'."""
        pandas = pandas_module()
        frame = pandas.DataFrame(self.sessions if table == "sessions" else self.rounds)
        for name in ("group", "status", "kind"):
            if name in frame.columns and table == "sessions":
                frame[name] = frame[name].astype("category")
        return frame

    def __repr__(self) -> str:
        s = self.summary
        return (f"Run({str(self.folder)!r}: {s['scenario']}, seed {s['seed']}, "
                f"{s['rounds_completed']} rounds in {s['virtual_time_s'] / 3600:.2f} h "
                f"virtual, stop {s['stop_reason']})")


def pandas_module() -> Any:
    """pandas, or an ImportError that says which extra installs it."""
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas needs pandas: pip install 'edgetwin[analysis]'") from None
    return pandas


def load_run(run_dir: str | Path) -> Run:
    """A run folder that `simulate` (or the command) wrote, read back."""
    from edgetwin.emulator.output.folder import load_run as load

    folder = Path(run_dir)
    scenario = load(folder).scenario
    summary = read_json_object(folder / "summary.json")
    meta = read_json_object(folder / "run.json") if (folder / "run.json").is_file() else {}
    return Run(folder, scenario, summary, float(meta.get("wall_s", math.nan)))


# --- workloads and profiles -----------------------------------------------------------------
