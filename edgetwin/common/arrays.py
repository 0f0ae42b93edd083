"""The array types every layer writes its columns in: numpy arrays of float64, int64 and
bool (a session, a client, an op per entry)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
