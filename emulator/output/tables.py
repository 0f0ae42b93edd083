"""A run folder's two tables, rounds and client_sessions, in the format the run was
written in: CSV (the default, byte-exact for a seed) or Parquet (`--format parquet`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from edgetwin.common.files import Table, read_table
from edgetwin.emulator.engine import Results
from edgetwin.emulator.output.files import write_rounds_csv, write_sessions_csv

Format = Literal["csv", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "parquet")
ROUNDS, SESSIONS = "rounds", "client_sessions"


def write_tables(results: Results, out: Path, fmt: Format = "csv") -> list[str]:
    """rounds and client_sessions in `fmt`; the files' names."""
    if fmt == "parquet":
        from edgetwin.emulator.output.parquet import write_rounds_parquet, write_sessions_parquet

        write_rounds_parquet(results, out / f"{ROUNDS}.parquet")
        write_sessions_parquet(results, out / f"{SESSIONS}.parquet")
    else:
        write_rounds_csv(results, out / f"{ROUNDS}.csv")
        write_sessions_csv(results, out / f"{SESSIONS}.csv")
    return [f"{ROUNDS}.{fmt}", f"{SESSIONS}.{fmt}"]


def table_file(folder: Path, stem: str) -> Path:
    """The folder's `stem` table: its CSV, or its Parquet file where only that is there
    (the CSV's path where neither is, for the message that says it is missing)."""
    parquet = folder / f"{stem}.parquet"
    csv = folder / f"{stem}.csv"
    return parquet if parquet.is_file() and not csv.is_file() else csv


def read_run_table(folder: Path, stem: str) -> Table:
    """A run folder's table as numpy columns, whichever format it was written in."""
    path = table_file(folder, stem)
    if path.suffix == ".parquet":
        from edgetwin.emulator.output.parquet import read_parquet

        return read_parquet(path)
    return read_table(path)
