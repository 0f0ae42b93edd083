"""The plots of a run, drawn to be read: the scale follows the data, the legend stays
off the data, an empty panel says why it is empty."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgetwin.emulator.engine import Results
from edgetwin.emulator.session import COMPLETED, STALE, STATUSES

__all__ = ["PLOTS", "STATUS_COLOURS", "write_plots"]

STATUS_COLOURS = {"completed": "#4c72b0", "offline": "#8c8c8c", "deadline": "#dd8452",
                  "out_of_memory": "#c44e52", "battery": "#937860", "interrupted": "#8172b3",
                  "cancelled": "#ccb974", "stale": "#64b5cd"}
OTHER_COLOUR = "#da8bc3"  # a status added to STATUSES but not yet given its own colour
PLOTS = ("round_duration.png", "session_time_cdf.png", "energy_per_client.png",
         "failures.png", "timeline.png")
FIGSIZE = {PLOTS[1]: (8.5, 3.4), PLOTS[4]: (9.0, 4.4)}  # room for a legend at the side
LEGEND_OUTSIDE: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0),
                                  "fontsize": 8, "frameon": False}


def write_plots(r: Results, out: Path) -> list[str]:
    """Draw each of PLOTS into `out`; return the names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    draw: dict[str, Callable[[Any, Results], None]] = {
        PLOTS[0]: _round_duration, PLOTS[1]: _session_time_cdf,
        PLOTS[2]: _energy_per_client, PLOTS[3]: _failures, PLOTS[4]: _timeline}
    for name in PLOTS:
        fig, ax = plt.subplots(figsize=FIGSIZE.get(name, (7.0, 3.2)))
        draw[name](ax, r)
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
    return list(PLOTS)


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, OTHER_COLOUR)


def group_colour(gi: int) -> str:
    """One colour per fleet group, the same in every plot of a run."""
    return f"C{gi % 10}"


def time_unit(span_s: float) -> tuple[float, str]:
    """Seconds per unit, and its name, for an axis of virtual time that spans `span_s`."""
    if span_s < 600:
        return 1.0, "s"
    if span_s < 3 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def _span_s(r: Results) -> float:
    ends = [row.end_s for row in r.rounds]
    if r.sessions:
        ends.append(float(np.max(r.sessions["end_s"])))
    return max([r.virtual_time_s, *ends])


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _round_duration(ax: Any, r: Results) -> None:
    """Sync: each round's length against the deadline. Async: the time between
    aggregations; `deadline_s` bounds a session there, not an aggregation, so it is
    not drawn."""
    orch = r.scenario.orchestration
    sync = orch.mode == "sync"
    what = "round duration" if sync else "time between aggregations"
    ax.set_title(f"{what} over time" if sync else
                 f"{what} (buffer of {orch.async_.buffer_size} reports)")
    scale, unit = time_unit(_span_s(r))
    ax.set_xlabel(f"virtual time{'' if sync else ' of the aggregation'}, {unit}")
    ax.set_ylabel(f"{what}, s")
    if not r.rounds:
        _empty(ax, "no round started")
        return
    start = np.array([row.start_s for row in r.rounds])
    end = np.array([row.end_s for row in r.rounds])
    dur = end - start
    ok = np.array([row.aggregated for row in r.rounds])
    x = (start if sync else end) / scale
    ax.scatter(x[ok], dur[ok], color="#4c72b0", s=8, label="aggregated")
    if (~ok).any():
        ax.scatter(x[~ok], dur[~ok], color="#c44e52", s=12, label="failed", zorder=3)
    top = float(dur.max()) * 1.15 or 1.0
    if sync:
        # a deadline far above every round would squash the rounds into a line at 0
        if orch.deadline_s <= 2.5 * float(dur.max()):
            ax.axhline(orch.deadline_s, color="#8c8c8c", lw=0.8, ls="--",
                       label=f"deadline {orch.deadline_s:,g} s\n(aggregation follows)")
            top = max(top, orch.deadline_s * 1.1)
        else:
            ax.text(0.99, 0.97, f"deadline {orch.deadline_s:,g} s, above this scale",
                    transform=ax.transAxes, ha="right", va="top", fontsize=8,
                    color="#555555")
    ax.set_ylim(0, top)
    if (~ok).any() or len(ax.get_lines()):
        ax.legend(**LEGEND_OUTSIDE)


def _session_time_cdf(ax: Any, r: Results) -> None:
    s = r.sessions
    ax.set_title("session-time CDF per group")
    ax.set_ylabel("share of sessions")
    # a stale session ran to its end like a completed one; only the server set it aside
    ran = (s["status"] == COMPLETED) | (s["status"] == STALE) if s else np.zeros(0, bool)
    what = "time of completed sessions (stale ones included)" if s and \
        (s["status"] == STALE).any() else "completed session time"
    ax.set_xlabel(f"{what}, s")
    if not ran.any():
        _empty(ax, "no session completed")
        return
    lo, hi = np.inf, 0.0
    for gi, g in enumerate(r.fleet.groups):
        m = (s["group"] == gi) & ran
        if not m.any():
            ax.plot([], [], " ", label=f"{g.name}: none completed")
            continue
        d = np.sort(s["end_s"][m] - s["start_s"][m])
        # from 0 at the shortest session, so that a group of one session is a line too
        ax.step(np.r_[d[0], d], np.arange(len(d) + 1) / len(d), where="post",
                color=group_colour(gi), label=f"{g.name} ({len(d):,})")
        lo, hi = min(lo, float(d[0])), max(hi, float(d[-1]))
    subs = log_tick_subs(lo, hi)
    if subs:
        ax.set_xscale("log")
        _log_ticks(ax.xaxis, subs)
        ax.set_xlabel(f"{what}, s (log)")
    ax.set_ylim(0, 1.02)
    ax.legend(title="group (sessions)", title_fontsize=8, **LEGEND_OUTSIDE)


def log_tick_subs(lo: float, hi: float) -> tuple[float, ...]:
    """Which multiples of each decade to label on a log axis over [lo, hi], so that at
    least two labelled ticks fall inside however narrow the range: 1-2-3-5 within two
    decades, 1-2-5 within four, decades beyond. Empty where the range is under a factor
    of 4: a log scale does not help there, keep the axis linear."""
    if not 0 < lo < hi or hi / lo < 4:
        return ()
    ratio = hi / lo
    return (1.0, 2.0, 3.0, 5.0) if ratio < 100 else (1.0, 2.0, 5.0) if ratio < 1e4 else (1.0,)


def _log_ticks(axis: Any, subs: tuple[float, ...]) -> None:
    import matplotlib.ticker as mt

    axis.set_major_locator(mt.LogLocator(base=10, subs=subs, numticks=30))
    axis.set_major_formatter(mt.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(mt.LogLocator(base=10, subs=tuple(range(2, 10)), numticks=30))
    axis.set_minor_formatter(mt.NullFormatter())


def _energy_per_client(ax: Any, r: Results) -> None:
    s = r.sessions
    ax.set_title("energy per participating client over the run")
    if not s:
        _empty(ax, "no session ran")
        return
    clients, which = np.unique(s["client"].astype(np.int64), return_inverse=True)
    per_client = np.bincount(which, weights=s["energy_j"])
    group = r.fleet.group[clients]
    scale, unit = (1.0, "J") if per_client.max() < 1e3 else \
        (1e3, "kJ") if per_client.max() < 1e6 else (1e6, "MJ")
    labels, data = [], []
    for gi, g in enumerate(r.fleet.groups):
        v = per_client[group == gi] / scale
        data.append(v)
        labels.append(f"{g.name}\n{len(v):,} clients" if len(v) else f"{g.name}\nnone took part")
    # each client a dot under its group's box: a box of a handful of clients hides them
    for gi, v in enumerate(data):
        ax.scatter(v, np.full(len(v), gi + 1), s=14, color=group_colour(gi), alpha=0.55,
                   linewidths=0, zorder=3)
    import matplotlib

    # matplotlib 3.10 renamed `vert` (deprecated in 3.11); pyproject allows 3.7
    sideways = {"orientation": "horizontal"} if tuple(
        int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10) else {"vert": False}
    ax.boxplot([v if len(v) else [np.nan] for v in data], widths=0.6, **sideways,
               flierprops={"marker": ""}, medianprops={"color": "black"}, zorder=2)
    ax.set_yticks(range(1, len(labels) + 1), labels, fontsize=8)
    ax.invert_yaxis()  # the first group on top, as in the legends and the report
    ax.set_xlim(left=0)
    ax.set_xlabel(f"energy per client, {unit}")


def _failures(ax: Any, r: Results) -> None:
    s = r.sessions
    names = [g.name for g in r.fleet.groups]
    counts = {status: np.array([np.sum((s["group"] == gi) & (s["status"] == i))
                                for gi in range(len(names))], dtype=float)
              for i, status in enumerate(STATUSES) if i != COMPLETED} if s else {}
    stale = "stale" in counts and counts["stale"].any()
    # a stale session did not end early: it completed and the server discarded its update
    ax.set_title("sessions that ended early, or were discarded as stale, by cause" if stale
                 else "sessions that ended early, by cause")
    if not any(c.any() for c in counts.values()):
        _empty(ax, f"none of the {len(s['status']):,} sessions ended early" if s else
               "no session ran")
        return
    left = np.zeros(len(names))
    for status, c in counts.items():
        if c.any():
            label = "stale (completed,\nupdate discarded)" if status == "stale" else status
            ax.barh(names, c, left=left, color=status_colour(status), label=label)
            left += c
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:,.0f}", va="center", fontsize=8)
    ax.set_xlim(0, left.max() * 1.12)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.invert_yaxis()  # the first group on top, as in the legends and the report
    ax.set_xlabel("sessions")
    ax.legend(**LEGEND_OUTSIDE)


def _timeline(ax: Any, r: Results) -> None:
    from matplotlib.patches import Rectangle

    s = r.sessions
    scale, unit = time_unit(_span_s(r))
    ax.set_xlabel(f"virtual time, {unit}")
    if not s:
        ax.set_title("sessions of sampled clients")
        _empty(ax, "no session ran")
        return
    clients = np.unique(s["client"])
    pick = clients[np.linspace(0, len(clients) - 1, min(30, len(clients))).astype(int)]
    ax.set_title(f"sessions of all {len(pick)} clients that took part" if len(pick) ==
                 len(clients) else
                 f"sessions of {len(pick)} of the {len(clients):,} clients that took part")
    min_w = _span_s(r) / scale * 2e-3  # a session shorter than this stays visible
    seen: set[int] = set()
    for y, c in enumerate(pick):
        m = s["client"] == c
        a, b, st = s["start_s"][m] / scale, s["end_s"][m] / scale, s["status"][m].astype(int)
        width = np.maximum(b - a, min_w)
        faces = [status_colour(STATUSES[k]) for k in st]
        # a white edge parts back-to-back sessions; a session too short for one keeps its colour
        edges = ["white" if w > 4 * min_w else f for w, f in zip(width, faces, strict=True)]
        ax.broken_barh(list(zip(a, width, strict=True)), (y - 0.4, 0.8), facecolors=faces,
                       edgecolors=edges, linewidth=0.5)
        seen.update(int(k) for k in st)
    ax.set_yticks(range(len(pick)), [f"{int(c)} {r.fleet.groups[int(r.fleet.group[c])].name}"
                                     for c in pick], fontsize=6 if len(pick) > 20 else 8)
    ax.set_ylim(len(pick) - 0.3, -0.7)  # the first client on top, as groups are elsewhere
    shown = [STATUSES[k] for k in sorted(seen)]
    handles = [Rectangle((0, 0), 1, 1, color=status_colour(st)) for st in shown]
    ax.legend(handles, shown, title="session ended", title_fontsize=8, **LEGEND_OUTSIDE)
