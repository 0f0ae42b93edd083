"""Run tables as Parquet (`--format parquet`): the columns of rounds.csv and
client_sessions.csv, typed, at the CSV's resolution (ms, mJ, whole bytes) and
compressed (zstd), the labelled columns (group, status, kind) dictionary-encoded. A
million-client run's sessions take a sixth of the CSV's bytes, and pandas, polars,
DuckDB and Arrow read them directly. Needs pyarrow (`pip install 'edgetwin[parquet]'`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgetwin.common.errors import InputError
from edgetwin.emulator.engine import Results
from edgetwin.emulator.output.files import DECIMALS, round_columns
from edgetwin.emulator.records import SESSION_COLUMNS
from edgetwin.emulator.session import STATUSES

COMPRESSION = "zstd"


def pyarrow_modules() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, or one line that says how to install them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("--format", "parquet", "needs pyarrow: pip install "
                         "'edgetwin[parquet]'") from None
    return pa, pq


def write_sessions_parquet(r: Results, path: Path) -> None:
    pa, pq = pyarrow_modules()
    s = r.sessions
    names = [g.name for g in r.fleet.groups]
    arrays, fields = [], []
    for k, dtype in SESSION_COLUMNS.items():
        v = s[k] if s else np.zeros(0, dtype=dtype)
        if k in ("group", "status"):
            arrays.append(_labels(pa, v, names if k == "group" else STATUSES))
        elif v.dtype.kind == "f":  # the CSV's resolution: the same figures, and they compress
            arrays.append(pa.array(np.round(v, DECIMALS.get(k, 0))))
        else:
            arrays.append(pa.array(v))
        fields.append(k)
    for name, (codes, labels) in r.label_columns.items():
        arrays.append(_labels(pa, codes, labels))
        fields.append(name)
    pq.write_table(pa.Table.from_arrays(arrays, names=fields), path, compression=COMPRESSION)


def write_rounds_parquet(r: Results, path: Path) -> None:
    pa, pq = pyarrow_modules()
    columns = round_columns(r)
    for name, values in columns.items():  # rounds.csv's resolution: 3 decimals
        if values and isinstance(values[0], float):
            columns[name] = [round(v, 3) for v in values]
    pq.write_table(pa.table(columns), path, compression=COMPRESSION)


def read_parquet(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """A Parquet table as numpy columns, labels as strings (as the CSV reader gives)."""
    _, pq = pyarrow_modules()
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(str(path), "", f"not a readable Parquet file ({err})") from None
    out = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if hasattr(column, "dictionary"):
            column = column.dictionary_decode()
        out[name] = column.to_numpy(zero_copy_only=False)
    return out


def _labels(pa: Any, codes: np.ndarray[Any, Any], labels: Any) -> Any:
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)),
                                          pa.array(list(labels)))
