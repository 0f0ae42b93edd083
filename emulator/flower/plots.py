"""Quality against virtual time, fleet energy and traffic, one line per method; one row
of panels per fleet variant (the robustness protocol's perturbations)."""

from __future__ import annotations

from pathlib import Path

from edgetwin.emulator.flower.protocols import Metric, Point

AXES = (("virtual_time_s", 3600.0, "virtual time, h"), ("energy_j", 1e3, "fleet energy, kJ"),
        ("traffic_bytes", 1e6, "traffic, MB"))


def plot_quality(runs: dict[str, dict[str, list[Point]]], metric: Metric, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(len(runs), 3, figsize=(11, 2.9 * len(runs)), squeeze=False,
                             sharey="row")
    for row, (variant, by_method) in enumerate(runs.items()):
        for col, (attr, scale, label) in enumerate(AXES):
            ax = axes[row][col]
            for method, points in by_method.items():
                ax.plot([getattr(p, attr) / scale for p in points],
                        [p.quality for p in points], marker="o", ms=3, label=method)
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        title = metric.column if variant == "none" else f"{metric.column}, {variant}"
        axes[row][0].set_ylabel(title)
        values = [p.quality for points in by_method.values() for p in points]
        if values and min(values) > 0 and max(values) / min(values) > 5:
            ax = axes[row][0]  # a first round far above the rest: log, in plain numbers
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
    axes[0][2].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                      title="method")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
