"""A picture of one training step across devices: where the time goes, what memory holds."""

from __future__ import annotations

from pathlib import Path

from edgetwin.profiles.costmodel import MIB, StepCost
from edgetwin.profiles.device import DeviceProfile
from edgetwin.profiles.workload import Workload

KIND_COLOURS = {"matmul": "#1f77b4", "attention": "#ff7f0e", "norm": "#2ca02c",
                "activation": "#d62728", "elementwise": "#9467bd", "embedding": "#8c564b",
                "cross_entropy": "#e377c2", "optimizer": "#7f7f7f", "storage": "#bcbd22",
                "communication": "#17becf"}


def plot_step_costs(workload: Workload, profiles: list[DeviceProfile], costs: list[StepCost],
                    path: Path) -> None:
    """Step time (log), its share by op kind, and peak memory against usable RAM (log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = [c.device for c in costs]
    fig, (ax_t, ax_s, ax_m) = plt.subplots(
        1, 3, figsize=(14, 0.5 * len(costs) + 2.4), sharey=True,
        gridspec_kw={"width_ratios": [1.0, 1.2, 1.0]})
    times = [c.step_time_s for c in costs]
    ax_t.barh(names, times, color="#4c72b0")
    for y, t in enumerate(times):
        ax_t.text(t, y, f" {t:.3g} s", va="center", fontsize=8)
    ax_t.set_xscale("log")
    ax_t.set_xlim(min(times) / 2, max(times) * 8)
    ax_t.set_xlabel("seconds per optimizer step (log)")
    left = [0.0] * len(costs)
    for kind, colour in KIND_COLOURS.items():
        share = [c.time_by_kind_s.get(kind, 0.0) / c.step_time_s for c in costs]
        if any(share):
            ax_s.barh(names, share, left=left, color=colour, label=kind)
            left = [a + b for a, b in zip(left, share, strict=True)]
    ax_s.set_xlim(0, 1)
    ax_s.set_xlabel("share of step time by op kind")
    ax_s.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4)
    peak = [c.peak_memory_bytes / MIB for c in costs]
    ax_m.barh(names, peak, color=["#4c72b0" if c.fits_in_memory else "#c44e52" for c in costs])
    ax_m.scatter([p.memory.usable_ram_mb for p in profiles], names, marker="|", s=300,
                 color="black", label="usable RAM", zorder=3)
    ax_m.set_xscale("log")
    ax_m.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax_m.set_xlim(256, 4 * max(max(peak), max(p.memory.usable_ram_mb for p in profiles)))
    ax_m.set_xlabel("peak memory, MiB (log; red: does not fit)")
    ax_m.legend(fontsize=7, loc="lower right")
    s, m = workload.setup, workload.method
    how = "full fine-tuning" if m.kind == "full" else f"LoRA r{m.lora_rank}"
    fig.suptitle(f"one optimizer step of {workload.model.name}, {how}, "
                 f"{s.grad_accum} x {s.batch} x {s.seq} tokens, {s.dtype}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
