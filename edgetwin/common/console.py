"""The consoles every command prints through: tables on stdout, as wide as the terminal
(a fixed width where the output goes to a file, so that it reads the same), and
progress and messages on stderr."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

FILE_WIDTH = 120  # the width of a table written to a file or a pipe


def out_console(width: int = FILE_WIDTH) -> Console:
    """stdout: tables and results."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else width)


def err_console() -> Console:
    """stderr: progress, warnings, one-line errors."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)
