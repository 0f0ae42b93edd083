"""Plots of a run and a short Markdown report that shows them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emulator.engine import Results
from emulator.session import COMPLETED, STATUSES

STATUS_COLOURS = {"completed": "#4c72b0", "offline": "#8c8c8c", "deadline": "#dd8452",
                  "out_of_memory": "#c44e52", "battery": "#937860", "interrupted": "#8172b3",
                  "cancelled": "#ccb974"}
PLOTS = ("round_duration.png", "session_time_cdf.png", "energy_per_client.png",
         "failures.png", "timeline.png")


def write_plots(r: Results, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    s = r.sessions
    names = [g.name for g in r.fleet.groups]
    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        written.append(name)

    fig, ax = plt.subplots(figsize=(7, 3.2))
    if r.rounds:
        start_h = np.array([row.start_s for row in r.rounds]) / 3600
        dur = np.array([row.end_s - row.start_s for row in r.rounds])
        ok = np.array([row.aggregated for row in r.rounds])
        ax.scatter(start_h[ok], dur[ok], color="#4c72b0", s=8, label="aggregated")
        ax.scatter(start_h[~ok], dur[~ok], color="#c44e52", s=12, label="failed round", zorder=3)
        ax.axhline(r.scenario.orchestration.deadline_s, color="#8c8c8c", lw=0.8, ls="--")
        if (~ok).any():
            ax.legend(fontsize=8)
    ax.set_xlabel("virtual time, hours")
    ax.set_ylabel("round duration, s")
    ax.set_title("round duration over time")
    save(fig, PLOTS[0])

    fig, ax = plt.subplots(figsize=(7, 3.2))
    if s:
        for gi, name in enumerate(names):
            m = (s["group"] == gi) & (s["status"] == COMPLETED)
            if m.any():
                d = np.sort(s["end_s"][m] - s["start_s"][m])
                ax.step(d, np.arange(1, len(d) + 1) / len(d), where="post", label=name)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=8)
    ax.set_xlabel("completed session time, s (log)")
    ax.set_ylabel("share of sessions")
    ax.set_title("session-time CDF per group")
    save(fig, PLOTS[1])

    fig, ax = plt.subplots(figsize=(7, 3.2))
    if s:
        per_client = np.bincount(s["client"].astype(np.int64), weights=s["energy_j"],
                                 minlength=r.fleet.n)
        group = r.fleet.group
        data = [per_client[(group == gi) & (per_client > 0)] / 1000 for gi in range(len(names))]
        ax.boxplot(data, vert=False)
        ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xlabel("energy per participating client over the run, kJ")
    ax.set_title("energy per client")
    save(fig, PLOTS[2])

    fig, ax = plt.subplots(figsize=(7, 3.2))
    if s:
        left = np.zeros(len(names))
        for i, status in enumerate(STATUSES):
            if i == COMPLETED:
                continue
            counts = np.array([np.sum((s["group"] == gi) & (s["status"] == i))
                               for gi in range(len(names))], dtype=float)
            if counts.any():
                ax.barh(names, counts, left=left, color=STATUS_COLOURS[status], label=status)
                left += counts
        if left.any():
            ax.legend(fontsize=8)
    ax.set_xlabel("sessions that ended early")
    ax.set_title("failures by cause")
    save(fig, PLOTS[3])

    fig, ax = plt.subplots(figsize=(8, 4))
    if s:
        clients = np.unique(s["client"])
        pick = clients[np.linspace(0, len(clients) - 1, min(30, len(clients))).astype(int)]
        for y, c in enumerate(pick):
            m = s["client"] == c
            for a, b, st in zip(s["start_s"][m], s["end_s"][m], s["status"][m], strict=True):
                ax.broken_barh([(a / 3600, max((b - a) / 3600, 1e-4))], (y - 0.4, 0.8),
                               color=STATUS_COLOURS[STATUSES[int(st)]])
        ax.set_yticks(range(len(pick)), [f"{int(c)} {names[int(r.fleet.group[c])]}"
                                         for c in pick], fontsize=6)
        from matplotlib.patches import Rectangle

        handles = [Rectangle((0, 0), 1, 1, color=col) for col in STATUS_COLOURS.values()]
        ax.legend(handles, list(STATUS_COLOURS), fontsize=6, ncol=4, loc="upper right")
    ax.set_xlabel("virtual time, hours")
    ax.set_title("timeline of sampled clients")
    save(fig, PLOTS[4])
    return written


def write_report(summary: dict[str, Any], plots: list[str], path: Path) -> None:
    lines = [f"# {summary['scenario']}", "",
             f"Seed {summary['seed']}, {summary['mode']} orchestration, stopped on "
             f"{summary['stop_reason']} after {summary['virtual_time_s'] / 3600:.2f} h of "
             "virtual time.", "",
             "| | total |" + "".join(f" {g} |" for g in summary["groups"]),
             "|---|---|" + "---|" * len(summary["groups"])]
    rows = [("clients", "fleet_clients", "clients"), ("sessions", "client_sessions",
                                                        "client_sessions"),
            ("completed", "completed_sessions", "completed_sessions"),
            ("energy, kJ", "energy_j", "energy_j"), ("upload, MB", "upload_bytes",
                                                      "upload_bytes"),
            ("download, MB", "download_bytes", "download_bytes")]
    for label, top, per in rows:
        scale = 1e-3 if "energy" in top else (1e-6 if "bytes" in top else 1)
        cells = [summary[top]] + [g[per] for g in summary["groups"].values()]
        lines.append(f"| {label} | " + " | ".join(_num(c * scale) for c in cells) + " |")
    fails = summary["failures"]
    lines += ["", f"Rounds: {summary['rounds_completed']} aggregated of "
              f"{summary['rounds_attempted']}, mean {summary['mean_round_s']:.1f} s.",
              "Sessions that ended early: " + (", ".join(f"{k} {v}" for k, v in fails.items()
                                                         if v) or "none") + ".", ""]
    lines += [f"![{p[:-4].replace('_', ' ')}]({p})" for p in plots]
    path.write_text("\n".join(lines) + "\n")


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:,.2f}"
