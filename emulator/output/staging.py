"""Where a run is written: a new or empty folder, or an earlier run replaced only when
asked. The run is written beside its folder first and swapped in whole once written,
so a run that fails loses nothing, and nothing but a run folder is ever cleared.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from edgetwin.common.errors import InputError

RUN_MARKERS = ("scenario.resolved.yaml", "run.json")  # a run folder holds both


def check_out(out: Path, overwrite: bool, inputs: Iterable[Path]) -> None:
    """Refuse, before the run, a folder that would be cleared but should not be: an
    earlier run without `overwrite`, a folder that is not a run, or one that holds the
    scenario or a file it names."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(str(out), "--out", "exists and is not a folder")
    if not any(out.iterdir()):
        return
    real = out.resolve()
    for path in inputs:
        if path.resolve().is_relative_to(real):
            raise InputError(str(out), "--out", f"holds {path}, which this run reads: write "
                             "the new run to another folder")
    if not all((out / name).is_file() for name in RUN_MARKERS):
        raise InputError(str(out), "--out", "is not empty and holds no run: choose another "
                         "folder (--overwrite replaces only run folders)")
    if not overwrite:
        raise InputError(str(out), "--out", "holds an earlier run: choose another folder, or "
                         "pass --overwrite to replace it")


def staging_folder(out: Path) -> Path:
    """A new folder beside `out` (through a link, beside its target) to write the run into."""
    real = out.resolve()
    real.parent.mkdir(parents=True, exist_ok=True)
    stage = real.parent / f".{real.name}.writing-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    return stage


def swap_in(stage: Path, out: Path) -> None:
    """The written run takes the place of `out` (an earlier run there is removed)."""
    real = out.resolve()
    if real.exists():
        shutil.rmtree(real)
    os.replace(stage, real)


def discard(stage: Path) -> None:
    shutil.rmtree(stage, ignore_errors=True)
