"""The `edgetwin` command as tests run it: in this process where no separate process is
the point (a bad flag, a table, a run folder), as a process where it is (an interrupt,
stdin and stdout of an agent, the installed entry point)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Done:
    """What a command left: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def edgetwin(*args: str, cwd: Path | None = None) -> Done:
    """`edgetwin ARGS` in this process; argparse's SystemExit counts as its exit status.
    An exception the command does not turn into a line and a status propagates, so a test
    sees the traceback a user would have."""
    from edgetwin.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _cwd(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            if isinstance(done.code, str):
                print(done.code, file=sys.stderr)
    return Done(code, out.getvalue(), err.getvalue())


def edgetwin_process(*args: str, timeout: float = 600, cwd: Path | None = None
                     ) -> subprocess.CompletedProcess[str]:
    """`python -m edgetwin.cli ARGS` as a process of its own."""
    return subprocess.run([sys.executable, "-m", "edgetwin.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def run_cli(*args: str) -> int:
    """`edgetwin ARGS` in this process, its exit status (its output left on the terminal)."""
    from edgetwin.cli import main

    try:
        return main(list(args))
    except SystemExit as done:
        return int(done.code or 0)


@contextlib.contextmanager
def _cwd(folder: Path | None) -> Iterator[None]:
    if folder is None:
        yield
        return
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)
