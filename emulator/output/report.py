"""A short Markdown report of a run that shows its plots (drawn by `output.plots`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_report(summary: dict[str, Any], plots: list[str], path: Path,
                 extra: list[str] | None = None) -> None:
    """report.md: the run in a page; `extra` lines (a Flower app's) before the plots."""
    lines = [f"# {summary['scenario']}", "",
             f"Seed {summary['seed']}, {summary['mode']} orchestration, stopped on "
             f"{summary['stop_reason']} after {summary['virtual_time_s'] / 3600:.2f} h of "
             "virtual time.", ""]
    if summary["warnings"]:
        lines += ["## Warnings", "", *[f"- {w}" for w in summary["warnings"]], ""]
    lines += ["| | total |" + "".join(f" {g} |" for g in summary["groups"]),
              "|---|---|" + "---|" * len(summary["groups"])]
    stale = summary["mode"] == "async"  # only asynchronous servers discard stale reports
    rows = [("clients", "fleet_clients", "clients"), ("sessions", "client_sessions",
                                                        "client_sessions"),
            ("completed", "completed_sessions", "completed_sessions"),
            *([("stale", "stale", "stale")] if stale else []),
            ("energy, kJ", "energy_j", "energy_j"), ("upload, MB", "upload_bytes",
                                                      "upload_bytes"),
            ("download, MB", "download_bytes", "download_bytes")]
    for label, top, per in rows:
        scale = 1e-3 if "energy" in top else (1e-6 if "bytes" in top else 1)
        cells = [_cell(summary, top)] + [_cell(g, per) for g in summary["groups"].values()]
        lines.append(f"| {label} | " + " | ".join(_num(c * scale) for c in cells) + " |")
    fails = {k: v for k, v in summary["failures"].items() if k != "stale"}
    lines += ["", f"Rounds: {summary['rounds_completed']} aggregated of "
              f"{summary['rounds_attempted']}, mean {summary['mean_round_s']:.1f} s.",
              "Sessions that ended early: " + (", ".join(f"{k} {v}" for k, v in fails.items()
                                                         if v) or "none") + "."]
    if stale:
        lines.append(f"Updates discarded as stale (the session completed; the server did not "
                     f"use its report): {summary['failures']['stale']:,}.")
    lines += [f"Energy: {summary['energy_j'] / 1e3:,.1f} kJ = "
              f"{summary['energy_j_in_rounds'] / 1e3:,.1f} kJ in the rounds of rounds.csv + "
              f"{summary['energy_j_after_last_round'] / 1e3:,.1f} kJ in sessions that ended "
              "after the last round + "
              f"{summary['energy_j_running_at_stop'] / 1e3:,.1f} kJ in sessions the stop cut "
              "short. Apart from it, the fleet's standby energy outside its sessions: "
              f"{summary['energy_j_idle_standby'] / 1e3:,.1f} kJ.", ""]
    lines += [*(extra or []), *(f"![{p[:-4].replace('_', ' ')}]({p})" for p in plots)]
    path.write_text("\n".join(lines) + "\n")


def _cell(totals: dict[str, Any], key: str) -> Any:
    """A figure of the totals (overall or one group's); `stale` is among the failures."""
    return totals["failures"]["stale"] if key == "stale" else totals[key]


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:,.2f}"
