"""What secure aggregation costs on the thousand-client fleet: the shipped Flower app
(FedAvg) without and with SecAgg+ through Flower's workflow, and with SecAgg+ under
more drop-outs between its stages.

Runs `edgetwin simulate scenarios/thousand_clients.yaml --app scenarios/apps/edge_lora`
for each case and prints a markdown table: per server round, virtual time, fleet energy
and traffic; the SecAgg+ control stages' share of them; the nodes that trained of those
asked; the share of rounds that aggregated (for SecAgg+: that kept enough nodes through
its stages to unmask the sum, as the workflow's own history records); and the held-out
perplexity at the end. Writes the plot to `--plot`. Same seed, same table.

Usage: python benchmarks/secagg_study.py [--rounds 20] [--plot docs/secagg_study.png]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from edgetwin.cli import main as edgetwin

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "thousand_clients.yaml"
APP = ROOT / "scenarios" / "apps" / "edge_lora"
SHARES = 11  # each node's neighbours in SecAgg+'s graph (odd, as Flower asks)
CASES = {  # name -> (run config, scenario overrides)
    "FedAvg": ("secagg=false", []),
    "SecAgg+, threshold 0.6": ("secagg=true secagg-threshold=0.6", []),
    "SecAgg+, threshold 0.6, 4x churn": (  # online spells of 30 min in place of 2 h
        "secagg=true secagg-threshold=0.6", ["availability.mean_session_s=1800"]),
    "SecAgg+, threshold 0.4": ("secagg=true secagg-threshold=0.4", []),
}


def run(case: str, rounds: int, fraction: float, out: Path) -> Path:
    config, sets = CASES[case]
    args = ["simulate", str(SCENARIO), "--app", str(APP), "--out", str(out), "--quiet",
            "--no-plots", "--run-config",
            f"{config} num-server-rounds={rounds} fraction-train={fraction} "
            f"min-train-nodes=10 secagg-shares={SHARES}"]
    for item in sets:
        args += ["--set", item]
    if edgetwin(args) != 0:
        raise SystemExit(f"secagg_study: the {case!r} run failed")
    return out


def summarise(out: Path) -> dict[str, float]:
    rows = list(csv.DictReader((out / "rounds.csv").open()))
    app = list(csv.DictReader((out / "app_metrics.csv").open()))
    n = len({r["server_round"] for r in rows if r["server_round"]})
    energy = sum(float(r["energy_j"]) for r in rows)
    traffic = sum(float(r["upload_bytes"]) + float(r["download_bytes"]) for r in rows)
    control = [r for r in rows if r["kind"] == "control"]
    span_s = max(float(r["end_s"]) for r in rows) - min(float(r["start_s"]) for r in rows)
    train = [r for r in rows if r["kind"] == "train"]
    lost, keyed = [], 0  # the share of nodes that answered the keys, not the model
    for r in rows:
        if r["stage"] == "share_keys":
            keyed = int(r["reported"])
        elif r["stage"] == "collect_masked_vectors" and keyed:
            lost.append(1 - int(r["reported"]) / keyed)
    return {
        "rounds": n, "time_h": span_s / n / 3600, "energy_kj": energy / n / 1e3,
        "traffic_mb": traffic / n / 1e6,
        "control_time": sum(float(r["duration_s"]) for r in control) / span_s,
        "control_energy": sum(float(r["energy_j"]) for r in control) / energy,
        "control_traffic": sum(float(r["upload_bytes"]) + float(r["download_bytes"])
                               for r in control) / traffic,
        # a round aggregated where the strategy aggregated its training metrics
        "reached": sum(1 for r in app if r.get("train_train_loss")) / n,
        "trained": sum(int(r["reported"]) for r in train) / max(1, len(train)),
        "asked": sum(int(r["selected"]) for r in train) / max(1, len(train)),
        "perplexity": float(app[-1]["server_perplexity"]),
        "lost": sum(lost) / len(lost) if lost else 0.0,
    }


def plot(results: dict[str, dict[str, float]], path: Path) -> None:
    names = list(results)
    fig, axes = plt.subplots(1, 4, figsize=(14, 2.8), sharey=True)
    panels = (("time_h", "virtual time per round, h"), ("energy_kj", "energy per round, kJ"),
              ("traffic_mb", "traffic per round, MB"),
              ("reached", "share of rounds aggregated"))
    colours = ["#4c72b0", "#dd8452", "#c44e52", "#55a868"][: len(names)]
    rows = range(len(names))
    for ax, (key, title) in zip(axes, panels, strict=True):
        ax.barh(rows, [results[n][key] for n in names], color=colours)
        ax.set_title(title, fontsize=9)
    axes[0].set_yticks(list(rows), names, fontsize=8)
    axes[0].invert_yaxis()  # the cases top to bottom, as in the table
    fig.suptitle(f"Secure aggregation on the thousand-client fleet (edge_lora, FedAvg; "
                 f"SecAgg+ with {SHARES} neighbours)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--fraction", type=float, default=0.1,
                        help="fraction-train: the share of available nodes asked a round")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "secagg_study.png")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(CASES):
            results[case] = summarise(run(case, args.rounds, args.fraction,
                                          Path(tmp) / f"case{i}"))
    print("| case | rounds | time / round, h | energy / round, kJ | traffic / round, MB "
          "| control stages: time, energy, traffic | nodes trained / asked "
          "| lost between stages | aggregated | final perplexity |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for case, r in results.items():
        print(f"| {case} | {r['rounds']:.0f} | {r['time_h']:.2f} | {r['energy_kj']:.1f} | "
              f"{r['traffic_mb']:.1f} | {r['control_time']:.1%}, {r['control_energy']:.2%}, "
              f"{r['control_traffic']:.1%} | {r['trained']:.1f} / {r['asked']:.1f} | "
              f"{r['lost']:.0%} | {r['reached']:.0%} | {r['perplexity']:.2f} |")
    plot(results, args.plot)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
