"""A sweep's settings compared over virtual time: per setting, the mean over its seeds of
the rounds aggregated, the fleet's energy and (where a Flower app reports one) the
model's quality, each with its band (the seeds' range), so that two policies are
compared at a glance. Read from the runs' rounds.csv and app_metrics.csv."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgetwin.emulator.sweep.results import SettingResult

CURVES = "sweep_over_time.png"
POINTS = 200  # the common time grid's points


def _series(run: Path) -> dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """A run's cumulative rounds aggregated and energy at each round's end, and the app's
    quality (its first `server_` metric) at each round's end where it reports one."""
    out = {}
    with (run / "rounds.csv").open() as fh:
        rounds = list(csv.DictReader(fh))
    if rounds:
        t = np.array([float(r["end_s"]) for r in rounds]) / 3600
        out["rounds aggregated"] = (t, np.cumsum([int(r["aggregated"]) for r in rounds]))
        out["fleet energy (kJ)"] = (t, np.cumsum([float(r["energy_j"]) for r in rounds]) / 1e3)
    metrics = run / "app_metrics.csv"
    if metrics.is_file():
        with metrics.open() as fh:
            rows = list(csv.DictReader(fh))
        quality = next((k for k in (rows[0] if rows else {}) if k.startswith("server_")), None)
        points = [(float(r["virtual_time_s"]) / 3600, float(r[quality])) for r in rows
                  if quality and r.get(quality) not in (None, "")]
        if quality and points:
            out[quality.removeprefix("server_")] = (np.array([p[0] for p in points]),
                                                    np.array([p[1] for p in points]))
    return out


def _on_grid(t: np.ndarray[Any, Any], y: np.ndarray[Any, Any], grid: np.ndarray[Any, Any]
             ) -> np.ndarray[Any, Any]:
    """The last value reached by each grid time (NaN before the first)."""
    i = np.searchsorted(t, grid, side="right") - 1
    return np.where(i >= 0, y[np.clip(i, 0, len(y) - 1)], np.nan)


def write_curves(results: list[SettingResult], rows: list[dict[str, str]], folder: Path
                 ) -> list[str]:
    """sweep_over_time.png: a panel per quantity, a line and a band per setting."""
    runs: dict[int, list[Path]] = {}
    for row in rows:
        if row.get("status") == "ok" and row.get("run"):
            runs.setdefault(int(row["setting"]), []).append(folder / row["run"])
    series = {i: [_series(p) for p in paths if (p / "rounds.csv").is_file()]
              for i, paths in runs.items()}
    names = list(dict.fromkeys(k for runs_of in series.values() for s in runs_of for k in s))
    if not names:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = max(float(t[-1]) for runs_of in series.values() for s in runs_of
              for t, _ in s.values())
    grid = np.linspace(0.0, end, POINTS)
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.4), squeeze=False)
    labels = {r.index: f"#{r.index} {r.label()}" for r in results}
    for ax, name in zip(axes.flat, names, strict=True):
        for index, runs_of in sorted(series.items()):
            ys = np.array([_on_grid(*s[name], grid) for s in runs_of if name in s])
            if not len(ys):
                continue
            with warnings.catch_warnings():  # a time no seed has reached yet: no value
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(ys, axis=0)
                low, high = np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)
            line = ax.plot(grid, mean, label=labels.get(index, f"#{index}"))[0]
            if len(ys) > 1:
                ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2,
                                linewidth=0)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("virtual time (h)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    handles, legend = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, legend, loc="lower center", ncol=min(len(legend), 3), fontsize=8,
               frameon=False)
    fig.suptitle("each setting over virtual time: the mean over seeds, the band their range",
                 fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.98, top=0.85, bottom=0.32, wspace=0.28)
    fig.savefig(folder / CURVES, dpi=90)
    plt.close(fig)
    return [CURVES]
