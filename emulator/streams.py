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

# append only: a stream's draws depend on its place in this list ("data", "battery" and
# "flexlora" drew client attributes before those became keyed draws of "fleet")
STREAMS = ("fleet", "data", "network", "availability", "battery", "dropout", "selection",
           "checkin", "flexlora", "validation", "flower", "compute")

# SplitMix64's constants (a compiled check-in, `checkin_kernel`, mixes as this does)
M1, M2, GOLDEN = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0x9E3779B97F4A7C15
_M1, _M2, _GOLDEN = np.uint64(M1), np.uint64(M2), np.uint64(GOLDEN)
_S10, _S27, _S30, _S31 = np.uint64(10), np.uint64(27), np.uint64(30), np.uint64(31)
_ONE = np.uint64(1)
_TWO_TO_MINUS_54 = 2.0 ** -54
BELOW_ONE = float(np.nextafter(1.0, 0.0))  # the largest uniform drawn
_MASK = (1 << 64) - 1
PREFIXES = 4096  # stream and leading scalar keys remembered mixed, at most


class Streams:
    """Named streams of one root seed."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        root = np.random.SeedSequence(self.seed)
        children = root.spawn(len(STREAMS))
        self._seqs = dict(zip(STREAMS, children, strict=True))
        self._keys = {name: np.uint64(seq.generate_state(1, np.uint64)[0])
                      for name, seq in self._seqs.items()}
        self._prefixes: dict[tuple[object, ...], np.uint64] = {}

    def generator(self, name: str) -> np.random.Generator:
        """A fresh generator for stream `name` (same seed, same draws, every time)."""
        return np.random.default_rng(self._seqs[name])

    def key(self, name: str) -> int:
        """Stream `name`'s own key: what its uniforms' keys are mixed with first."""
        return int(self._keys[name])

    def keyed_generator(self, name: str, *keys: int) -> np.random.Generator:
        """A generator for stream `name` and integer keys (a round): the same keys give
        the same draws, whatever was drawn before."""
        seq = self._seqs[name]
        return np.random.default_rng(np.random.SeedSequence(
            seq.entropy, spawn_key=(*seq.spawn_key, *keys)))

    def uniform(self, name: str, *keys: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Uniforms in (0, 1) that are a pure function of the stream and the integer keys."""
        lead = 0  # leading scalar keys (an attribute's number) are mixed once, as integers
        while lead < len(keys) and _scalar(keys[lead]):
            lead += 1
        h = self._mixed(name, keys[:lead])
        if lead == len(keys):
            x = np.array(h, dtype=np.uint64)
        else:  # h ^ the first key's product, as product ^ h: h is not broadcast
            x = np.multiply(_as_unsigned(keys[lead]), _GOLDEN)
            x ^= h
            scratch = np.empty_like(x)
            _splitmix_in_place(x, scratch)
        for key in keys[lead + 1:]:
            a = _as_unsigned(key)
            shape = np.broadcast_shapes(x.shape, a.shape)
            if shape != x.shape:
                x = np.broadcast_to(x, shape).copy()
                scratch = np.empty(shape, dtype=np.uint64)
            # the key's bits as unsigned (two's complement), times the golden ratio
            np.multiply(a, _GOLDEN, out=scratch)
            x ^= scratch
            _splitmix_in_place(x, scratch)
        return unit_interval(x)

    def _mixed(self, name: str, scalars: tuple[npt.ArrayLike, ...]) -> np.uint64:
        """The stream's key mixed with leading scalar keys, as integers (remembered: the
        same few recur on every call)."""
        try:
            return self._prefixes[(name, *scalars)]
        except KeyError:
            pass
        except TypeError:  # a 0-d array key: not hashable
            scalars = tuple(int(np.asarray(k, dtype=np.int64)) for k in scalars)
            return self._mixed(name, scalars)
        h = self.key(name)
        for k in scalars:
            key = int(np.asarray(k, dtype=np.int64)) & _MASK  # two's complement
            h = _splitmix_int(h ^ key * GOLDEN & _MASK)
        if len(self._prefixes) >= PREFIXES:
            self._prefixes.clear()
        self._prefixes[(name, *scalars)] = mixed = np.uint64(h)
        return mixed


def unit_interval(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Hashed keys `x` (changed in place) as uniforms in (0, 1): the top 53 bits m as
    (m + 1/2) / 2^53. That is 2m + 1 (the top 54 bits, the last set to 1) converted,
    rounding to nearest even as m + 1/2 rounds, then scaled exactly. The largest m
    rounds up to 1 (once in 2^53 draws), so 1 is taken to the largest double below it:
    a normal quantile at 1 is infinite (an array, 0-d for scalar keys only)."""
    x >>= _S10
    x |= _ONE
    out: npt.NDArray[np.float64] = x.view(np.int64).astype(np.float64)  # (less than a
    out *= _TWO_TO_MINUS_54  # conversion inside the multiplication costs)
    np.minimum(out, BELOW_ONE, out=out)
    return out


def _scalar(key: npt.ArrayLike) -> bool:
    """Whether a key is one number (`np.ndim(key) == 0`, without its cost for ints)."""
    if isinstance(key, np.ndarray):
        return key.ndim == 0
    return isinstance(key, (int, np.integer)) or np.ndim(key) == 0


def _as_unsigned(key: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """An integer key's bits as unsigned (two's complement)."""
    a = key if isinstance(key, np.ndarray) and key.dtype == np.int64 else \
        np.asarray(key, dtype=np.int64)
    return a.view(np.uint64)


def _splitmix_int(x: int) -> int:
    """SplitMix64's finaliser on a Python integer (as `_splitmix_in_place`, wrapped)."""
    x = (x + GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * M1) & _MASK
    x = ((x ^ (x >> 27)) * M2) & _MASK
    return x ^ (x >> 31)


def _splitmix_in_place(x: npt.NDArray[np.uint64], scratch: npt.NDArray[np.uint64]) -> None:
    """SplitMix64's finaliser, over `x` in place (unsigned arithmetic wraps, as it must)."""
    x += _GOLDEN
    np.right_shift(x, _S30, out=scratch)
    x ^= scratch
    x *= _M1
    np.right_shift(x, _S27, out=scratch)
    x ^= scratch
    x *= _M2
    np.right_shift(x, _S31, out=scratch)
    x ^= scratch
