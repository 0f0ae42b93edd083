"""Check-in: which idle clients a launch may ask, and which it asks.

A launch draws a uniform pool of `pool_factor` clients per slot from the whole fleet
(again while fewer than that are eligible, four draws at most), keeps the idle ones
that are online and charged enough, and lets the selection policy choose among them.
A client's charge is worked out only when it is online at a check-in; it is written
when its session ends. A synchronous round is one launch; buffered asynchronous
aggregation launches at many instants. All draws are counter-based uniforms keyed by
the launch's number, so that launches can be selected many at once and the result
does not depend on how many. A single launch's large draws run compiled where numba is
installed (`checkin_kernel`), giving the same candidates.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetwin.common.arrays import F64, I64, B, at_places, run_starts, sort_ids
from edgetwin.emulator.entries import take
from edgetwin.emulator.selection.policies import Context, Pool

if TYPE_CHECKING:
    from edgetwin.emulator.engine import Engine

REDRAWS = 4  # draws per launch if availability is thin
# a single launch's draws of this many or more run compiled where numba is installed
# (`checkin_kernel`: the same candidates); tests switch it off to compare
KERNEL_FROM = 4096
KERNEL = importlib.util.find_spec("numba") is not None
# ...in runs expected to draw this many candidates or more: numba's import and start
# cost about half a second and 100 MiB a process, which fewer draws do not win back
KERNEL_CANDIDATES = 5_000_000


@dataclass(frozen=True)
class Selection:
    """The clients a check-in chose, the launch each is for, and what the policy was
    asked (its context and pool, and the places in the pool it chose)."""

    clients: I64
    launch: I64
    ctx: Context
    pool: Pool
    places: I64


def one_launch(engine: Engine, k: int, rnd: int, launch: int) -> I64:
    """A synchronous round's clients (round `rnd`, its draws keyed by `launch`)."""
    now = float(engine.env.now)
    sel = launches(engine, np.array([now]), np.array([k]), np.array([launch]))
    if engine.observer.selections:
        engine.observer.selected(sel.ctx, sel.pool, sel.places, np.array([rnd]))
    return sel.clients


@dataclass(frozen=True)
class Candidates:
    """The eligible candidates of one or more launches (launch `i` at `now_s[i]` for
    `k[i]` slots, its draws keyed by `launch_id[i]`): each with its launch, the draw that
    first drew it and its charge then, in no particular order (`choose` sorts its pool).
    Who else a launch of the same batch invites is not yet taken into account (`choose`
    does that)."""

    clients: I64
    launch: I64
    redraw: I64
    battery_j: F64
    now_s: F64
    k: I64
    launch_id: I64

    def only(self, which: I64) -> Candidates:
        """The launches `which` (increasing), numbered from 0 in that order."""
        number = np.full(len(self.k), -1, dtype=np.int64)
        number[which] = np.arange(len(which))
        renumbered = number[self.launch]
        m = renumbered >= 0
        return Candidates(self.clients[m], renumbered[m], self.redraw[m], self.battery_j[m],
                          self.now_s[which], self.k[which], self.launch_id[which])


def launches(engine: Engine, now_s: F64, k: I64, launch_id: I64) -> Selection:
    """The clients of one or more launches (see `Candidates`), and the launch each is
    for: each launch draws again while fewer than it wants are eligible. Each client's
    state is read as of its launch; nothing is written."""
    want = _want(engine, k)
    seen, found = candidates(engine, now_s, k, launch_id, range(1))
    for redraw in range(1, REDRAWS):
        short = np.bincount(found.launch, minlength=len(k)) < want
        if not short.any():
            break
        more = candidates(engine, now_s, np.where(short, k, 0), launch_id,
                          range(redraw, redraw + 1), seen)[1]
        found = _union(found, more)
    return choose(engine, found)


def candidates(engine: Engine, now_s: F64, k: I64, launch_id: I64,
               redraws: range = range(REDRAWS), seen: Drawn | None = None
               ) -> tuple[Drawn, Candidates]:
    """Draws number `redraws` of the launches (those with `k` > 0): `pool_factor` per
    slot, uniform over the fleet (the whole fleet in order where that is as many), those
    drawn before (`seen`) left out; the eligible ones: idle, online and charged enough
    at their launch's instant (the charge worked out only for those online)."""
    n = engine.fleet.n
    seen = seen or Drawn(n, len(k))
    if seen.marked is not None:
        return seen, _single(engine, now_s, k, launch_id, redraws, seen)
    size = np.minimum(_want(engine, k), n)
    whole = size >= n  # a pool as large as the fleet is the fleet: one draw finds it all
    todo = np.flatnonzero((k > 0) & (~whole if redraws.start else True))
    per = np.repeat(size[todo], len(redraws))
    g = np.repeat(np.repeat(todo, len(redraws)), per)
    r = np.repeat(np.tile(np.arange(redraws.start, redraws.stop), len(todo)), per)
    draw = np.arange(len(g)) - np.repeat(np.cumsum(per) - per, per)
    u = engine.streams.uniform("checkin", (launch_id[g] * REDRAWS + r) << 32 | draw)
    c = np.where(whole[g], draw, np.minimum((u * n).astype(np.int64), n - 1))
    g, c, r = seen.new(g, c, r)
    i, battery = _eligible(engine, c, now_s[g])
    return seen, Candidates(c[i], g[i], r[i], battery, now_s, k, launch_id)


def _eligible(engine: Engine, c: I64, t_s: F64 | float) -> tuple[I64, F64]:
    """The places in `c` of those idle, online and charged enough at `t_s` (one instant
    for all, or one each), and their charge (worked out only for those online)."""
    model, t = engine.model, np.asarray(t_s, dtype=np.float64)
    # online first: it rules out most, so fewer of the fleet's busy times are read
    on, chargers = model.availability.online_with_chargers(c, t)
    i = np.flatnonzero(on)
    idle = engine.busy_until_s[c[i]] <= at_places(t, i)
    i = i[idle]
    ci = c[i]
    capacity = engine.fleet.battery_capacity_j[ci]  # read once for the charge and the check
    battery = model.battery_at(ci, at_places(t, i),
                               None if chargers is None else take(chargers, idle), capacity)
    ok = model.charged_enough(ci, battery, capacity)
    return i[ok], battery[ok]


def _single(engine: Engine, now_s: F64, k: I64, launch_id: I64, redraws: range,
            seen: Drawn) -> Candidates:
    """`candidates` of a single launch: one instant for all its candidates, its draws one
    after another (the same candidates, with fewer arrays carried along)."""
    n = engine.fleet.n
    size = min(int(_want(engine, k)[0]), n)
    clients, charge, numbers = [], [], []
    for r in redraws if k[0] > 0 else ():
        if size >= n and r > 0:  # the whole fleet was drawn at once
            break
        key = (int(launch_id[0]) * REDRAWS + r) << 32
        got = _compiled(engine, seen, key, size, float(now_s[0]))
        if got is None:
            draw = np.arange(size, dtype=np.int64)
            if size < n:
                u = engine.streams.uniform("checkin", key | draw)
                draw = np.minimum((u * n).astype(np.int64), n - 1)
            c = seen.fresh(draw)
            i, battery = _eligible(engine, c, float(now_s[0]))
            got = c[i], battery
        clients.append(got[0])
        charge.append(got[1])
        numbers.append(np.full(len(got[0]), r, dtype=np.int64))
    c = np.concatenate(clients) if clients else np.zeros(0, dtype=np.int64)
    return Candidates(c, np.zeros(len(c), dtype=np.int64),
                      np.concatenate(numbers) if numbers else np.zeros(0, dtype=np.int64),
                      np.concatenate(charge) if charge else np.zeros(0), now_s, k, launch_id)


def _compiled(engine: Engine, seen: Drawn, key: int, size: int, t_s: float
              ) -> tuple[I64, F64] | None:
    """A single launch's draw by `checkin_kernel` (its eligible clients in client order,
    and their charge), or None where that does not run."""
    if not KERNEL or size < KERNEL_FROM or seen.marked is None:
        return None
    if engine.checkin_fleet is None:
        s, engine.checkin_fleet = engine.scenario, False
        if s.expected_sessions * s.selection.pool_factor >= KERNEL_CANDIDATES:
            kernel = _kernel_module(engine)
            if kernel is not None:
                engine.checkin_fleet = kernel.fleet_of(engine) or False
    fleet = engine.checkin_fleet
    if fleet is None or fleet is False:
        return None
    from edgetwin.emulator import checkin_kernel  # imported when the fleet was asked

    got: tuple[I64, F64] | None = checkin_kernel.eligible_draw(
        engine, fleet, seen.marked, seen.n <= BITS_PER_DRAW * size, key, size, t_s)
    return got


def _kernel_module(engine: Engine) -> Any:
    """`checkin_kernel`, or None where numba is installed but cannot run (a numba too old
    for this numpy refuses to import; one that finds no folder to cache its code in
    refuses to compile): the numpy path then draws the same candidates, and the run's
    warnings say so."""
    try:
        from edgetwin.emulator import checkin_kernel
    except (ImportError, RuntimeError) as e:
        engine.warnings += (f"the compiled check-in is off: numba is installed but cannot "
                            f"run here ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                            "; the results are the same, a large fleet's check-ins slower",)
        return None
    return checkin_kernel


def choose(engine: Engine, cands: Candidates, held: tuple[I64, F64] | None = None
           ) -> Selection:
    """The policy's choice for each launch among its candidates: those of the draws a
    launch would have made (one after another while fewer than `pool_factor` per slot
    were eligible), less the `held` clients (sorted, each with its first instant: busy
    after that instant, as an earlier launch of the same batch invited them)."""
    c, g, r, b = cands.clients, cands.launch, cands.redraw, cands.battery_j
    if held is not None and len(held[0]):
        free = ~busy_among(cands, held)
        c, g, r, b = c[free], g[free], r[free], b[free]
    launches = len(cands.k)
    per = np.bincount(g * REDRAWS + r, minlength=launches * REDRAWS).reshape(-1, REDRAWS)
    before = np.cumsum(per, axis=1) - per  # eligible in the draws before each
    made = (before < _want(engine, cands.k)[:, None])[g, r]
    c, g, b = c[made], g[made], b[made]
    order = np.lexsort((c, g))
    pool = Pool(clients=c[order], launch=g[order], slots=cands.k, now_s=cands.now_s,
                battery_j=b[order])
    streams, launch_id = engine.streams, cands.launch_id

    def uniforms(clients: I64, launch: I64) -> F64:
        return streams.uniform("selection", launch_id[launch], clients)

    ctx = engine.context(uniforms)
    idx = engine.policy(ctx, pool)
    return Selection(pool.clients[idx], pool.launch[idx], ctx, pool, idx)


def busy_among(cands: Candidates, held: tuple[I64, F64]) -> B:
    """Which candidates `held` holds busy (`choose`): invited at an instant before
    their own launch's."""
    if not len(held[0]):
        return np.zeros(len(cands.clients), dtype=bool)
    c = cands.clients
    at = np.minimum(np.searchsorted(held[0], c), len(held[0]) - 1)
    busy: B = (held[0][at] == c) & (held[1][at] < cands.now_s[cands.launch])
    return busy


def _want(engine: Engine, k: I64) -> I64:
    """Candidates wanted per launch: `pool_factor` per slot."""
    want: I64 = np.ceil(engine.scenario.selection.pool_factor * k).astype(np.int64)
    return want


def _union(a: Candidates, b: Candidates) -> Candidates:
    """Two sets of candidates of the same launches, as one."""
    return dataclasses.replace(a, **{name: np.concatenate([getattr(a, name), getattr(b, name)])
                                     for name in ("clients", "launch", "redraw", "battery_j")})


class Drawn:
    """The (launch, client) pairs drawn so far: for a single launch, a mark per client of
    the fleet (zeroed memory, touched only where drawn); sorted keys otherwise (a cost
    that grows with the draws, not with the fleet)."""

    def __init__(self, n: int, launches: int) -> None:
        self.n = n
        self.marked = np.zeros(n, dtype=np.uint8) if launches == 1 else None
        self.keys = np.zeros(0, dtype=np.int64)

    def new(self, g: I64, c: I64, r: I64) -> tuple[I64, I64, I64]:
        """The distinct pairs among these not drawn before (made by draw `r` each), each
        with the first draw that drew it (several launches; a single one draws by
        `fresh`)."""
        # by launch, client, then draw; the draws come launch by launch, so a merge sort of
        # the runs costs a fifth to a quarter of numpy's default here (the same numbers)
        ranked = np.sort((g * self.n + c) * REDRAWS + r, kind="stable")
        keys, r = ranked // REDRAWS, ranked % REDRAWS
        firsts = run_starts(keys)
        keys, r = keys[firsts], r[firsts]
        if len(self.keys) and len(keys):
            at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            fresh = self.keys[at] != keys
            keys, r = keys[fresh], r[fresh]
            self.keys = np.sort(np.concatenate([self.keys, keys]))
        elif len(keys):
            self.keys = keys
        return keys // self.n, keys % self.n, r

    def fresh(self, draw: I64) -> I64:
        """The clients drawn (`draw`: any order, repeats allowed) not drawn before, each
        once and in client order (every column is then read front to back, not at
        random); now drawn. Where the fleet is at most `SCAN_PER_DRAW` clients a draw,
        the marks are set and scanned (a pass over a byte a client), else the draw sorted
        (`sort_ids`: some nanoseconds a draw): the same clients either way."""
        marked = self.marked
        assert marked is not None
        if self.n <= SCAN_PER_DRAW * len(draw):
            marked[draw] |= _NEW
            c: I64 = np.flatnonzero(marked == _NEW)  # drawn now only: the others hold _DRAWN
        else:
            c = sort_ids(draw, self.n)
            c = c[marked[c] == 0]
            c = c[run_starts(c)]
        marked[c] = _DRAWN
        return c


# clients of the fleet a draw up to which its marks are scanned; above, sorting the draw
# (`sort_ids`) costs less (they break even near 27 clients a draw, 13,000 draws)
SCAN_PER_DRAW = 28
BITS_PER_DRAW = 64  # the compiled draw's own: a bit a client read, or the draw sorted
_DRAWN, _NEW = np.uint8(1), np.uint8(2)  # marks: drawn before (_NEW may be set on it too)
