"""Compiled inner loops, where numba is installed (`pip install edgetwin[fast]`).

A `Kernel` is a plain Python function over arrays and scalars that numba compiles the
first time it is asked for; its caller keeps a numpy path that gives the same bytes and
takes it wherever numba is missing or `EDGETWIN_COMPILED=0` turns compiling off. numba
is imported only when a kernel is first asked for: `import edgetwin` stays light.
"""

from __future__ import annotations

import functools
import os
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_enabled = os.environ.get("EDGETWIN_COMPILED", "1") != "0"


@functools.cache
def _numba() -> Any:
    try:
        import numba
    except ImportError:
        return None
    return numba


def available() -> bool:
    """Whether kernels are compiled in this process (numba installed, not turned off)."""
    return _enabled and _numba() is not None


@contextmanager
def turned_off() -> Iterator[None]:
    """Every kernel's numpy path inside the block (what a run without numba takes)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


class Kernel:
    """`fn` compiled in nopython mode (cached on disk beside its module), or None; the
    functions it `uses` (by their global names, from the same module, so that the disk
    cache sees their changes) are compiled along with it."""

    def __init__(self, fn: Callable[..., Any], uses: tuple[Callable[..., Any], ...] = ()
                 ) -> None:
        self.fn, self.uses = fn, uses
        self._compiled: Any = None

    def get(self) -> Callable[..., Any] | None:
        if not available():
            return None
        if self._compiled is None:
            numba, fn = _numba(), self.fn
            names = dict(fn.__globals__)
            names.update({u.__name__: numba.njit(nogil=True)(u) for u in self.uses})
            copy = types.FunctionType(fn.__code__, names, fn.__name__, fn.__defaults__,
                                      fn.__closure__)
            copy.__module__, copy.__qualname__ = fn.__module__, fn.__qualname__
            self._compiled = numba.njit(cache=True, nogil=True)(copy)
        compiled: Callable[..., Any] = self._compiled
        return compiled
