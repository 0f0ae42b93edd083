"""Hours of the day: `np.mod(hours, 24.0)` bit for bit, at a fifth of its cost.

Every check-in works out local time for each candidate (its daily window, its charger),
and numpy's floating-point modulo (a libm `fmod` and a sign fix per value) was the
largest single cost of a large fleet's check-in. For |hours| below `EXACT_BELOW`,
`x - 24 * floor(x / 24)` gives the same bits: 24 * q is exact for a whole q of that
size (24 is 3 x 8); the difference, of magnitude below 24 and on x's own grid, is
exact too; `floor(x / 24)` is never below the true quotient's floor (rounding is
monotone and whole multiples divide exactly), and where it is one above, the negative
difference plus 24 rounds once, as numpy's fix-up does. Values all of the day already
(a window's start) are handed back as they are (numpy's `fmod` is exact; -0.0 becomes
0.0, as numpy's sign fix makes it). Outside that range (and for inf and nan) numpy's
modulo itself is used. `tests/test_emulator_units.py` checks it bit
for bit against `np.mod`, near every whole multiple of 24 and at tiny and huge values.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgetwin.common.arrays import F64

EXACT_BELOW = 2.0 ** 50  # hours: 24 x floor(x / 24) exact below this (see the module's note)
FEW = 1024  # values: numpy's one call costs less than the formula's several below this


def mod_24(hours: npt.ArrayLike) -> F64:
    """`np.mod(hours, 24.0)`, the same bits: the hour of the day in [0, 24] (24.0 where
    a tiny negative value rounds up to it, as numpy's does)."""
    x = np.asarray(hours, dtype=np.float64)
    if x.size < FEW:
        out: F64 = np.mod(x, 24.0)
        return out
    lo, hi = x.min(), x.max()
    if not (hi < EXACT_BELOW and lo > -EXACT_BELOW):
        return np.mod(x, 24.0)
    if lo >= 0.0 and hi < 24.0:  # hours of the day already (a daily window's start):
        return x + 0.0  # unchanged, as numpy's modulo leaves them, -0.0 made 0.0 as it is
    r: F64 = x - np.floor(x / 24.0) * 24.0
    np.add(r, 24.0, out=r, where=r < 0.0)
    return r
