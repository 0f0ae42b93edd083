"""A long session through the emulator's device-state model: speed, power, temperature
and charge of one device over hours of training, on battery and on its charger.

Prints, per device: energy per step cold and at the end, the steady temperature against
the profile's throttle points, speed and power at the end, the battery's drain per hour
(or its gain on the charger) and the time until it would reach the scenario's abort line.
Plots speed, power and temperature of the first device over the session.

Usage: python benchmarks/device_state.py [--hours 2] [--plot docs/device_state_flagship.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgetwin.emulator.engine import Engine  # noqa: E402
from edgetwin.emulator.scenario import parse_scenario  # noqa: E402
from edgetwin.emulator.timeline import StepTimeline, step_timeline  # noqa: E402
from edgetwin.profiles.device import load_profile  # noqa: E402

# Gemma-3-270M LoRA, the setup of the long sessions the device-state model was checked on
DEVICES = (("flagship-phone-sd8gen3", False), ("hi-nova-9-pro", False),
           ("flagship-phone-sd8gen3", True), ("laptop-x86-8core", True))


def timeline(profile: str, plugged: bool, hours: float) -> StepTimeline:
    data = {"name": "device-state", "seed": 1,
            "fleet": {"clients": 1, "groups": [
                {"name": "one", "profile": profile, "count": 1, "setup": {"batch": 4, "seq": 128},
                 "spread": {"speed": 1.0, "background_load": 0.0}}]},
            "workload": {"model": "gemma-3-270m", "method": "lora",
                         "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj"]}}
    s = parse_scenario(data, "device-state", ROOT / "scenarios")
    model = Engine(s, ROOT / "scenarios", 1).model
    step_s = float(model.costs.step_s[0])
    steps = int(hours * 3600 / step_s) + 1  # enough for the hours at full speed
    tl = step_timeline(model, 0, steps, plugged=plugged)
    keep = tl.end_s <= hours * 3600
    return StepTimeline(**{k: v[keep] if isinstance(v, np.ndarray) else v
                           for k, v in vars(tl).items()})


def report(profile: str, plugged: bool, tl: StepTimeline) -> str:
    th = load_profile(profile).thermal
    hours = tl.end_s[-1] / 3600
    drain = (100.0 - tl.battery_pct[-1]) / hours
    where = "on its charger" if plugged else "on battery"
    return (f"{profile} {where}, {len(tl.end_s):,} steps in {hours:.2f} h: energy/step "
            f"{tl.energy_j[0]:.1f} J cold, {tl.energy_j[-1]:.1f} J at the end "
            f"(x{tl.energy_j[-1] / tl.energy_j[0]:.2f}); {tl.temp_c[-1]:.1f} C at the end "
            f"(throttle {th.throttle_start_c:.0f}-{th.throttle_full_c:.0f} C), speed "
            f"{tl.speed[-1]:.2f}, power {tl.power_w[0]:.2f} -> {tl.power_w[-1]:.2f} W; battery "
            f"{tl.battery_pct[-1]:.1f} % ({-drain:+.1f} %/h)")


def plot(tl: StepTimeline, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = tl.end_s / 60
    fig, axes = plt.subplots(3, 1, figsize=(7, 6), sharex=True)
    for ax, values, label in ((axes[0], tl.speed, "speed factor"),
                              (axes[1], tl.power_w, "power, W"),
                              (axes[2], tl.temp_c, "temperature, C")):
        ax.plot(minutes, values, lw=1.5)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    axes[2].set_xlabel("minutes of training")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--plot", type=Path, default=None, help="write the first device's plot")
    args = ap.parse_args()
    for i, (profile, plugged) in enumerate(DEVICES):
        tl = timeline(profile, plugged, args.hours)
        print(report(profile, plugged, tl))
        if i == 0 and args.plot is not None:
            plot(tl, f"{profile}, Gemma-3-270M LoRA b4 s128, on battery", args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
