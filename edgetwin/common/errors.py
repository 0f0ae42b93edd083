"""The one error type for bad input: it names the file (or flag), the key and the problem."""

from __future__ import annotations


class InputError(Exception):
    """Bad user input; the CLI prints `str(err)` as one line and exits with status 2."""

    def __init__(self, where: str, key: str, problem: str) -> None:
        self.where = where
        self.key = key
        self.problem = problem
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")
