"""A sweep's plots: each compared metric against each swept key, a line per value of
the other keys, the 95 % interval of each mean as an error bar."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from edgetwin.emulator.sweep.results import SettingResult
from edgetwin.emulator.sweep.units import title, unit

PANELS_PER_ROW = 3


def plot_name(key: str) -> str:
    return f"sweep_{key}.png"


def write_plots(results: list[SettingResult], keys: list[str], metrics: list[str],
                out: Path) -> list[str]:
    """One figure per swept key, a panel per metric; the names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for key in keys:
        values = list(dict.fromkeys(r.values[key] for r in results))
        others = [k for k in keys if k != key]
        lines = list(dict.fromkeys(tuple(r.values[k] for k in others) for r in results))
        rows = (len(metrics) + PANELS_PER_ROW - 1) // PANELS_PER_ROW
        cols = min(PANELS_PER_ROW, len(metrics))
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows + 0.6),
                                 squeeze=False)
        for ax, metric in itertools.zip_longest(axes.flat, metrics):
            if metric is None:
                ax.set_visible(False)
                continue
            _, scale = unit(metric)
            width = 0.5 / max(len(lines), 1)
            for li, line in enumerate(lines):
                xs, ys, errs = [], [], []
                for xi, value in enumerate(values):
                    match = [r for r in results if r.values[key] == value and
                             tuple(r.values[o] for o in others) == line]
                    if match:
                        e = match[0].estimate(metric)
                        xs.append(xi + (li - (len(lines) - 1) / 2) * width)
                        ys.append(e.mean * scale)
                        errs.append(0.0 if math.isnan(e.half_width) else e.half_width * scale)
                label = ", ".join(f"{o}={v}" for o, v in zip(others, line, strict=True))
                ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label or None)
            ax.set_xticks(range(len(values)), values, fontsize=8)
            ax.set_title(title(metric), fontsize=9)
            ax.set_xlabel(key, fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
        if others:
            handles, labels = axes.flat[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="lower center", ncol=min(len(lines), 4),
                       fontsize=8, frameon=False)
        fig.suptitle(f"means over seeds, 95 % intervals: against {key}", fontsize=10)
        height = 3.0 * rows + 0.6
        fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.8 / height,
                            bottom=(0.95 if others else 0.5) / height, hspace=0.55, wspace=0.3)
        name = plot_name(key)
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        names.append(name)
    return names
