"""The replay journal: every result appended (and synced) the moment it arrives.

The first line says what the replay is (the run, the devices, the seed and the
sample drawn); every later line is one session's result, `replayed` or `lost`.
A session's last line is its state: running the same replay again skips what was
replayed, and tries again what was lost. A torn last line (the power went) is
dropped, never misread.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetwin.common.errors import InputError

FORMAT = "edgetwin-replay"
VERSION = 1
REPLAYED, LOST = "replayed", "lost"


@dataclass
class Journal:
    path: Path
    header: dict[str, Any]
    entries: dict[int, dict[str, Any]] = field(default_factory=dict)  # row -> last entry
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, path: Path, header: dict[str, Any]) -> Journal:
        """Continue the journal at `path`, or start one with `header`; a journal of
        another replay (other run, seed or sample size) is refused."""
        if not path.exists() or not path.stat().st_size:
            path.parent.mkdir(parents=True, exist_ok=True)
            journal = cls(path, {"format": FORMAT, "version": VERSION, **header})
            journal._append(journal.header)
            return journal
        lines = path.read_text().splitlines()
        try:
            first = json.loads(lines[0])
        except (json.JSONDecodeError, IndexError):
            raise InputError(str(path), "line 1", "not a replay journal") from None
        if not isinstance(first, dict) or first.get("format") != FORMAT or \
                first.get("version") != VERSION:
            raise InputError(str(path), "line 1", f"not a {FORMAT} journal of version {VERSION}")
        for key in ("run", "seed", "sample_size"):
            if first.get(key) != header.get(key):
                raise InputError(str(path), key, f"this journal is of another replay ({key} "
                                 f"{first.get(key)!r}, now {header.get(key)!r}): use the same "
                                 "options, or another --out")
        journal = cls(path, first)
        for number, line in enumerate(lines[1:], start=2):
            try:
                entry = json.loads(line)
                journal.entries[int(entry["session"])] = entry
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                if number != len(lines):
                    raise InputError(str(path), f"line {number}", "not a journal entry"
                                     ) from None
                # torn by an interruption: cut it off, the session is replayed again
                text = path.read_bytes()
                keep = text.rstrip(b"\n").rfind(b"\n") + 1
                os.truncate(path, keep)
        return journal

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._append(entry)
            self.entries[int(entry["session"])] = entry

    def replayed(self) -> list[dict[str, Any]]:
        return [e for e in self.entries.values() if e["status"] == REPLAYED]

    def lost(self) -> list[dict[str, Any]]:
        return [e for e in self.entries.values() if e["status"] == LOST]

    def state(self, row: int) -> str | None:
        e = self.entries.get(row)
        return None if e is None else str(e["status"])

    def _append(self, entry: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
