"""Which sessions of a run to replay: a sample stratified by outcome, and an
over-represented stratum of sessions near the deadline.

The `uniform` stratum is a proportional sample over outcomes and device groups
(each outcome of each group present gets at least one session where the budget
allows), so its figures estimate the whole run and every class of attached device
has sessions to replay. The `near_deadline` stratum draws from sessions whose end
lies close to the moment their round stopped waiting, where a small error in
compute time flips the decision; it takes up to half the budget and is reported
on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hil.runsessions import RunSession

UNIFORM, NEAR = "uniform", "near_deadline"


def stratified_sample(sessions: Sequence[RunSession], n: int, seed: int
                      ) -> list[tuple[int, str]]:
    """(row, stratum) pairs, at most `n`, rows sorted within each stratum."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7265706C6179]))
    near_pool = [s.row for s in sessions if s.near_deadline]
    n_near = min(len(near_pool), n // 2)
    n_uniform = min(n - n_near, len(sessions))
    uniform = _by_outcome(sessions, n_uniform, rng)
    taken = set(uniform)
    near_left = [r for r in near_pool if r not in taken]
    near = sorted(int(r) for r in rng.choice(near_left, min(n_near, len(near_left)),
                                             replace=False)) if near_left else []
    # a budget the near stratum could not use goes to the uniform one
    spare = n - len(uniform) - len(near)
    if spare > 0:
        near_set = set(near)
        rest = [s.row for s in sessions if s.row not in taken and s.row not in near_set]
        if rest:
            extra = rng.choice(rest, min(spare, len(rest)), replace=False)
            uniform = sorted([*uniform, *(int(r) for r in extra)])
    return [(r, UNIFORM) for r in uniform] + [(r, NEAR) for r in near]


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
