"""Trying a device again after its link failed: the wait before each retry, whether a
failure is worth another try, and an action retried on those terms."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from edgetwin.hil.transports import LinkError

T = TypeVar("T")
BACKOFF_S = (1.0, 2.0, 5.0, 10.0)  # after the first failure in a row, the second, ...


def backoff_s(failures: int) -> float:
    """The wait after the `failures`-th failure in a row."""
    return BACKOFF_S[min(max(failures, 1) - 1, len(BACKOFF_S) - 1)]


def worth_retrying(err: LinkError, failures: int, retries: int) -> bool:
    """Another try after the `failures`-th failure in a row, with `retries` allowed: not
    where trying again cannot mend it (a refused key, a missing program)."""
    return not err.permanent and failures <= retries


def retried(action: Callable[[], T], retries: int,
            sleep: Callable[[float], None] = time.sleep,
            before_retry: Callable[[LinkError], None] = lambda err: None) -> T:
    """`action`'s result, tried again (after a backoff) on a link failure worth it, at most
    `retries` times; the last failure raised."""
    failures = 0
    while True:
        try:
            return action()
        except LinkError as err:
            failures += 1
            if not worth_retrying(err, failures, retries):
                raise
            before_retry(err)
            sleep(backoff_s(failures))
