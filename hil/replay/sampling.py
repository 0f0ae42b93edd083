"""Which sessions of a run to replay: a sample stratified by outcome, and an
over-represented stratum of timing-sensitive sessions.

The `uniform` stratum is a proportional sample over outcomes and device groups
(each outcome of each group present gets at least one session where the budget
allows), so its figures estimate the whole run and every class of attached device
has sessions to replay. The `timing_sensitive` stratum draws from sessions whose
outcome changes if their compute time were 1.25 times longer or shorter (their
`timing_margin`), where a small error flips the emulator's decision; it takes up to
half the budget and is reported on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgetwin.hil.replay.sessions import RunSession

UNIFORM, SENSITIVE = "uniform", "timing_sensitive"
STRATA = (UNIFORM, SENSITIVE)


def stratified_sample(sessions: Sequence[RunSession], n: int, seed: int
                      ) -> list[tuple[int, str]]:
    """(row, stratum) pairs, at most `n`, rows sorted within each stratum."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7265706C6179]))
    sensitive_pool = [s.row for s in sessions if s.sensitive]
    n_sensitive = min(len(sensitive_pool), n // 2)
    n_uniform = min(n - n_sensitive, len(sessions))
    uniform = _by_outcome(sessions, n_uniform, rng)
    taken = set(uniform)
    sensitive_left = [r for r in sensitive_pool if r not in taken]
    sensitive = sorted(int(r) for r in rng.choice(
        sensitive_left, min(n_sensitive, len(sensitive_left)), replace=False)
    ) if sensitive_left else []
    # a budget the sensitive stratum could not use goes to the uniform one
    spare = n - len(uniform) - len(sensitive)
    if spare > 0:
        sensitive_set = set(sensitive)
        rest = [s.row for s in sessions if s.row not in taken and s.row not in sensitive_set]
        if rest:
            extra = rng.choice(rest, min(spare, len(rest)), replace=False)
            uniform = sorted([*uniform, *(int(r) for r in extra)])
    return [(r, UNIFORM) for r in uniform] + [(r, SENSITIVE) for r in sensitive]


def _by_outcome(sessions: Sequence[RunSession], n: int, rng: np.random.Generator
                ) -> list[int]:
    """A proportional sample over (outcome, group), by largest remainder, each present
    getting one first where `n` allows."""
    if n <= 0 or not sessions:
        return []
    groups: dict[tuple[int, int], list[int]] = {}
    for s in sessions:
        groups.setdefault((s.status, s.group), []).append(s.row)
    keys = sorted(groups)
    sizes = np.array([len(groups[k]) for k in keys], dtype=float)
    alloc = np.zeros(len(keys), dtype=int)
    if n >= len(keys):
        alloc += 1
    quota = sizes / sizes.sum() * (n - alloc.sum())
    alloc += np.floor(quota).astype(int)
    order = np.argsort(-(quota - np.floor(quota)), kind="stable")
    for i in order[: n - int(alloc.sum())]:
        alloc[i] += 1
    alloc = np.minimum(alloc, sizes.astype(int))
    out: list[int] = []
    for k, a in zip(keys, alloc, strict=True):
        if a:
            out += [int(r) for r in rng.choice(groups[k], int(a), replace=False)]
    return sorted(out)
