"""Worker processes that do not re-run the caller's script.

Python's `spawn` start method runs the parent's main script again in every worker (as
`__mp_main__`), so a plain script that calls `edgetwin.sweep(...)` without an
`if __name__ == "__main__":` guard would start its own sweep in each worker. edgetwin's
workers need nothing from the caller's script (their jobs name functions of the
package), so while they start, the main module is shown to `multiprocessing` as a
notebook's is: without a file to run again."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

_HIDDEN = ("__file__", "__spec__")


@contextmanager
def without_main_script() -> Iterator[None]:
    """Workers spawned inside this block start from the package alone."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in _HIDDEN if main is not None and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)
