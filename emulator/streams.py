"""One root seed, split into named random streams.

Two kinds of randomness: `uniform(name, a, b)` gives counter-based uniforms keyed by
integers (attribute, client, round, step), so a client's attributes and an event's
randomness depend on who and when, never on how many draws came before: a different
selection policy cannot shift another stream, and any client can be worked out alone;
`generator(name)` gives a numpy Generator for the few draws made once (the seed a
Flower app is handed).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgetwin.emulator.kernels import GOLDEN, M1, M2, MIX, S11, S27, S30, S31

# append only: a stream's draws depend on its place in this list ("data", "battery" and
# "flexlora" drew client attributes before those became keyed draws of "fleet")
STREAMS = ("fleet", "data", "network", "availability", "battery", "dropout", "selection",
           "checkin", "flexlora", "validation", "flower", "compute")

_MASK, _GOLDEN_INT, _M1_INT, _M2_INT = (1 << 64) - 1, int(GOLDEN), int(M1), int(M2)


class Streams:
    """Named streams of one root seed."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        root = np.random.SeedSequence(self.seed)
        children = root.spawn(len(STREAMS))
        self._seqs = dict(zip(STREAMS, children, strict=True))
        self._keys = {name: np.uint64(seq.generate_state(1, np.uint64)[0])
                      for name, seq in self._seqs.items()}

    def generator(self, name: str) -> np.random.Generator:
        """A fresh generator for stream `name` (same seed, same draws, every time)."""
        return np.random.default_rng(self._seqs[name])

    def keyed_generator(self, name: str, *keys: int) -> np.random.Generator:
        """A generator for stream `name` and integer keys (a round): the same keys give
        the same draws, whatever was drawn before."""
        seq = self._seqs[name]
        return np.random.default_rng(np.random.SeedSequence(
            seq.entropy, spawn_key=(*seq.spawn_key, *keys)))

    def key(self, name: str) -> np.uint64:
        """Stream `name`'s own key (what `uniform` mixes its keys into)."""
        return self._keys[name]

    def uniform(self, name: str, *keys: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Uniforms in (0, 1) that are a pure function of the stream and the integer keys."""
        h = int(self._keys[name])
        first = 0  # leading scalar keys (an attribute's number) are mixed once, as integers
        while first < len(keys) and np.ndim(keys[first]) == 0:
            key = int(np.asarray(keys[first], dtype=np.int64)) & _MASK  # two's complement
            h = _splitmix_int(h ^ key * _GOLDEN_INT & _MASK)
            first += 1
        arrays = [np.asarray(k, dtype=np.int64) for k in keys[first:]]
        kernel = MIX.get() if arrays else None
        if kernel is not None:
            shape = np.broadcast_shapes(*(a.shape for a in arrays))
            flat = [np.broadcast_to(a, shape).reshape(-1) for a in arrays]  # copies a broadcast
            rows = np.stack(flat) if len(flat) > 1 else flat[0].reshape(1, -1)
            out = np.empty(rows.shape[1], dtype=np.float64)
            kernel(np.uint64(h), rows, out)
            return out.reshape(shape)
        x = np.array(h, dtype=np.uint64)
        scratch = np.empty((), dtype=np.uint64)
        for a in arrays:
            shape = np.broadcast_shapes(x.shape, a.shape)
            if shape != x.shape:
                x = np.broadcast_to(x, shape).copy()
                scratch = np.empty(shape, dtype=np.uint64)
            # the key's bits as unsigned (two's complement), times the golden ratio
            np.multiply(a.view(np.uint64), GOLDEN, out=scratch)
            x ^= scratch
            _splitmix_in_place(x, scratch)
        x >>= S11
        out = x.astype(np.float64)
        out += 0.5
        out *= 1.0 / float(1 << 53)
        return out


def _splitmix_int(x: int) -> int:
    """SplitMix64's finaliser on a Python integer (as `_splitmix_in_place`, wrapped)."""
    x = (x + _GOLDEN_INT) & _MASK
    x = ((x ^ (x >> 30)) * _M1_INT) & _MASK
    x = ((x ^ (x >> 27)) * _M2_INT) & _MASK
    return x ^ (x >> 31)


def _splitmix_in_place(x: npt.NDArray[np.uint64], scratch: npt.NDArray[np.uint64]) -> None:
    """SplitMix64's finaliser, over `x` in place (unsigned arithmetic wraps, as it must)."""
    x += GOLDEN
    np.right_shift(x, S30, out=scratch)
    x ^= scratch
    x *= M1
    np.right_shift(x, S27, out=scratch)
    x ^= scratch
    x *= M2
    np.right_shift(x, S31, out=scratch)
    x ^= scratch

