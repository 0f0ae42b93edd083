"""Every generated figure the README and the docs quote, produced again by the commands
that make it, and written between its markers in the document:

    <!-- figure: NAME (python benchmarks/docs_figures.py --only NAME) -->
    ...
    <!-- /figure -->

`python benchmarks/docs_figures.py` (`make docs-figures`) rewrites every block;
`--only A,B` some; `--check` rewrites nothing and exits 1 naming each block whose
figures no longer come out (a CI test runs the cheap ones). Parts that depend on the
machine (wall-clock times, sessions per wall second) are marked volatile: written
fresh, never compared. Runs go to a temporary folder; `--keep DIR` keeps them.

Usage: python benchmarks/docs_figures.py [--only NAME,...] [--check] [--cheap] [--list]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = "scenarios/apps/edge_lora"
EIGHT = "scenarios/edgeflowertune_8client.yaml"
THOUSAND = "scenarios/thousand_clients.yaml"
RANKS_8 = ["--set", "workload.algorithm=flexlora", "--set", "fleet.groups.0.lora_rank=4",
           "--set", "fleet.groups.1.lora_rank=16"]
RANKS_1K = ["--set", "workload.algorithm=flexlora", "--set", "fleet.groups.0.lora_rank=4",
            "--set", "fleet.groups.2.lora_rank=16", "--set", "fleet.groups.4.lora_rank=16"]
METHODS = ["--methods", "fedavg,fedprox,flexlora"]


@dataclass(frozen=True)
class Figure:
    name: str
    document: str  # relative to the repository
    make: Callable[[Path], str]  # a scratch folder -> the block's text
    cheap: bool = False  # seconds, not minutes: the CI check reruns it
    volatile: tuple[str, ...] = ()  # regexes of parts that depend on the machine


def edgetwin(*args: str, cwd: Path = ROOT) -> str:
    """`edgetwin ARGS` (from the repository's root), its stdout (stderr on failure)."""
    done = subprocess.run([sys.executable, "-m", "edgetwin.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "COLUMNS": "120"})
    if done.returncode != 0:
        raise SystemExit(f"docs_figures: edgetwin {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


PLOTS = {"write": True}  # --check writes nothing, plots included


def copy_plot(source: Path, name: str) -> None:
    """A run's plot into docs/ under `name`, as the documents show it."""
    if PLOTS["write"]:
        (ROOT / "docs" / name).write_bytes(source.read_bytes())


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def code_block(out: str) -> str:
    """A command's output as a fenced block, without the padding rich adds to lines."""
    return "```\n" + "\n".join(line.rstrip() for line in out.rstrip().splitlines()) + "\n```"


def prose(text: str) -> str:
    return textwrap.fill(text, width=88, break_on_hyphens=False)


def table(head: list[str], rows: list[list[str]], right_from: int = 1) -> str:
    align = ["---" if i < right_from else "---:" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def f(value: str, digits: int = 2, scale: float = 1.0, sign: bool = False) -> str:
    x = float(value)
    if math.isnan(x):
        return "none"
    return f"{x / scale:{'+' if sign else ''},.{digits}f}"


# --- the figures ------------------------------------------------------------------------
def readme_thousand_clients(scratch: Path) -> str:
    """`make demo`'s output (run in the scratch folder: the same text, nothing written
    into the repository)."""
    out = edgetwin("simulate", "thousand_clients", "--out", "runs/thousand-clients",
                   "--overwrite", cwd=scratch)
    run = scratch / "runs" / "thousand-clients"
    copy_plot(run / "session_time_cdf.png", "session_time_cdf.png")
    sessions = rows_of(run / "client_sessions.csv")
    asked = len({s["client"] for s in sessions})
    reported = len({s["client"] for s in sessions if s["status"] == "completed"})
    mean_round = float(rows_of(run / "rounds.csv")[-1]["end_s"]) / len(rows_of(run / "rounds.csv"))
    return code_block(out) + "\n\n" + prose(
        f"What it says: rounds close in about {round(mean_round, -1):.0f} s because the "
        "fast devices report first, and over-commitment then cancels the rest. As in "
        "production federated learning, a phone takes part only while it is on its "
        "charger (its nightly window; the boards are on mains), so "
        f"{asked:,} of 1,000 clients are ever asked and {reported:,} ever report.")


SWEEP = ["--seeds", "10", "--grid", "selection.policy=random,deadline_aware,oort", "--grid",
         "orchestration.overcommit=0.2,0.5"]


def readme_sweep(scratch: Path) -> str:
    """The README's sweep (run in the scratch folder, as `runs/thousand-clients-sweep`)."""
    out = edgetwin("sweep", "thousand_clients", *SWEEP, "--workers", "2", cwd=scratch)
    plot = scratch / "runs" / "thousand-clients-sweep" / "sweep_selection.policy.png"
    copy_plot(plot, "sweep_policies.png")
    return code_block(out)


def readme_compare(scratch: Path) -> str:
    """The README's comparison of settings 2 and 4 of that sweep, and what it says."""
    folder = scratch / "runs" / "thousand-clients-sweep"
    if not (folder / "sweep.csv").is_file():
        edgetwin("sweep", "thousand_clients", *SWEEP, "--workers", "2", "--quiet", cwd=scratch)
    out = edgetwin("sweep", "runs/thousand-clients-sweep", "--compare", "2", "4", cwd=scratch)

    def relative(metric: str) -> str:
        row = next(line for line in out.splitlines() if line.startswith(f"│ {metric}"))
        return row.split("│")[5].strip().split(" (")[0]

    flagship = next(line for line in out.splitlines() if "flagship-phones" in line)
    points = abs(float(flagship.split("│")[4].split("±")[0]))
    time_rel, energy_rel = relative("time to 100 rounds"), relative("energy per round")
    faster = time_rel.lstrip("-")
    return code_block(out) + "\n\n" + prose(
            f"At 50 % over-commitment, deadline-aware selection reaches 100 rounds {faster} "
            f"sooner than random selection, for {energy_rel.lstrip('+')} more energy per "
            f"round: it moves {points:.0f} points of the updates from the flagship phones to "
            "the fast, power-hungry Orin boards and laptops, and the Jetson Nanos almost "
            "never get one in.")


def _protocol(scratch: Path, protocol: str, *extra: str) -> Path:
    out = scratch / protocol
    edgetwin("protocol", protocol, EIGHT, "--app", APP, *METHODS, *RANKS_8, "--out", str(out),
             "--overwrite", *extra)
    copy_plot(out / f"{protocol}.png", f"protocol_{protocol.replace('-', '_')}.png")
    return out / f"{protocol}.csv"


def quality_under_budget(scratch: Path) -> str:
    rows = rows_of(_protocol(scratch, "quality-under-budget", "--run-config",
                             "num-server-rounds=10 fraction-train=0.5"))
    units = {"time": (3600, "h"), "energy": (1e3, "kJ"), "traffic": (1e6, "MB")}
    body = []
    for r in rows:
        scale, unit = units[r["budget"]]
        body.append([f"{r['budget']} {f(r['budget_value'], 2, scale)} {unit}", r["method"],
                     f(r["quality"]) if r["quality"] else "not reached", r["round"] or "-"])
    return table(["budget", "method", "best perplexity within it", "at round"], body, 2)


def cost_to_target(scratch: Path) -> str:
    rows = rows_of(_protocol(scratch, "cost-to-target", "--run-config",
                             "num-server-rounds=10 fraction-train=0.5"))
    target = f(rows[0]["target"])
    body = [[r["method"], "yes" if r["reached"] == "True" else "no", r["round"] or "-",
             f(r["virtual_time_s"], 2, 3600) if r["virtual_time_s"] else "-",
             f(r["energy_j"], 1, 1e3) if r["energy_j"] else "-",
             f(r["traffic_bytes"], 2, 1e6) if r["traffic_bytes"] else "-"] for r in rows]
    return table(["method", f"reached {target}", "at round", "virtual time, h",
                  "energy, kJ", "traffic, MB"], body, 2)


def _robustness_table(path: Path) -> str:
    body = [[r["perturbation"], r["method"], f(r["final_quality"]),
             f(r["quality_change"], 2, sign=True), f(r["time_ratio"]), f(r["energy_ratio"]),
             f(r["traffic_bytes"], 2, 1e6), r["throttled"], r["battery"],
             r["offline"], r["interrupted"], f(r["transfer_s"], 2), r["changed"]]
            for r in rows_of(path)]
    return table(["perturbation", "method", "final perplexity", "change", "time x",
                  "energy x", "traffic, MB", "throttled", "battery", "offline", "abandoned",
                  "transfer s", "changed"], body, 2)


def robustness_8(scratch: Path) -> str:
    return _robustness_table(_protocol(scratch, "robustness", "--workers", "1",
                                       "--run-config", "num-server-rounds=5 fraction-train=0.5"))


def robustness_1k(scratch: Path) -> str:
    out = scratch / "robustness-1k"
    edgetwin("protocol", "robustness", THOUSAND, "--app", APP, *METHODS, *RANKS_1K,
             "--out", str(out), "--overwrite", "--run-config",
             "num-server-rounds=4 fraction-train=0.02 min-train-nodes=10")
    copy_plot(out / "robustness.png", "protocol_robustness_thousand_clients.png")
    return _robustness_table(out / "robustness.csv")


def secagg_study(scratch: Path) -> str:
    plot = ["--plot", str(scratch / "secagg_study.png")]
    done = subprocess.run([sys.executable, "benchmarks/secagg_study.py", *plot], cwd=ROOT,
                          capture_output=True, text=True, timeout=3600)
    copy_plot(scratch / "secagg_study.png", "secagg_study.png")
    if done.returncode != 0:
        raise SystemExit(f"docs_figures: secagg_study.py failed:\n{done.stderr}")
    return "\n".join(line for line in done.stdout.splitlines() if line.startswith("|"))


def secagg_exchanges(scratch: Path) -> str:
    out = scratch / "secagg-one"
    edgetwin("simulate", THOUSAND, "--app", APP, "--out", str(out), "--overwrite", "--quiet",
             "--no-plots", "--run-config", "secagg=true num-server-rounds=1 "
             "fraction-train=0.1 min-train-nodes=10 secagg-shares=11 secagg-threshold=0.6")
    names = {"setup": "setup", "share_keys": "share keys",
             "collect_masked_vectors": "collect masked vectors", "unmask": "unmask"}
    body = [[names.get(r["stage"], r["stage"]), r["kind"], f"{r['selected']} / {r['reported']}",
             f(r["duration_s"], 2 if float(r["duration_s"]) < 100 else 0),
             f(r["energy_j"], 1 if float(r["energy_j"]) < 1e3 else 0),
             f"{int(float(r['download_bytes'])):,} / {int(float(r['upload_bytes'])):,}"]
            for r in rows_of(out / "rounds.csv")]
    return table(["exchange", "kind", "nodes asked / replied", "time, s", "energy, J",
                  "bytes down / up"], body, 2)


def readme_flower_app(scratch: Path) -> str:
    out = scratch / "app-1k"
    t0 = time.perf_counter()
    edgetwin("simulate", THOUSAND, "--app", APP, "--out", str(out), "--overwrite", "--quiet",
             "--run-config", "num-server-rounds=20 fraction-train=0.01 min-train-nodes=10")
    wall = time.perf_counter() - t0
    sessions = rows_of(out / "client_sessions.csv")
    metrics = rows_of(out / "app_metrics.csv")
    ended: dict[str, int] = {}
    for s in sessions:
        if s["status"] != "completed":
            ended[s["status"]] = ended.get(s["status"], 0) + 1
    done = sum(1 for s in sessions if s["status"] == "completed")
    causes = ", ".join(f"{k} {v}" for k, v in sorted(ended.items(), key=lambda kv: -kv[1]))
    last = metrics[-1]
    copy_plot(out / "app_quality.png", "app_quality.png")
    took = f"{int(wall // 60)} min {int(wall % 60)} s" if wall >= 60 else f"{wall:.0f} s"
    return prose(f"On 1,000 clients, 10 a round, 20 rounds, this two-core machine took "
            f"{took}. {done} of the {len(sessions)} sessions "
            f"reported and trained for real; the others ended early ({causes}) and never "
            f"reached an aggregate. Perplexity fell from "
            f"{float(metrics[0]['server_perplexity']):.0f} to "
            f"{float(last['server_perplexity']):.1f} over "
            f"{float(last['virtual_time_s']) / 3600:.1f} virtual hours, "
            f"{float(last['energy_j']) / 1e3:,.0f} kJ of fleet energy and "
            f"{float(last['traffic_bytes']) / 1e6:,.0f} MB of traffic:")


FIGURES = [
    Figure("readme-thousand-clients", "README.md", readme_thousand_clients, cheap=True,
           volatile=(r"[\d,]+ sessions per wall second",)),
    Figure("readme-sweep", "README.md", readme_sweep,
           volatile=(r"not run, \d+ s",)),
    Figure("readme-compare", "README.md", readme_compare),
    Figure("readme-flower-app", "README.md", readme_flower_app,
           volatile=(r"took (?:\d+ min )?\d+ s",)),
    Figure("flower-quality-under-budget", "docs/flower.md", quality_under_budget),
    Figure("flower-cost-to-target", "docs/flower.md", cost_to_target),
    Figure("flower-robustness", "docs/flower.md", robustness_8),
    Figure("flower-robustness-1k", "docs/flower.md", robustness_1k),
    Figure("secagg-study", "docs/flower.md", secagg_study),
    Figure("secagg-exchanges", "docs/flower.md", secagg_exchanges, cheap=True),
]


# --- the blocks in the documents --------------------------------------------------------
def block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- figure: {re.escape(name)} [^\n]*-->\n)(.*?)(\n<!-- /figure -->)",
                      re.S)


def masked(text: str, volatile: tuple[str, ...]) -> str:
    for pattern in volatile:
        text = re.sub(pattern, "<varies>", text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated figure names")
    parser.add_argument("--cheap", action="store_true", help="only the figures CI reruns")
    parser.add_argument("--check", action="store_true",
                        help="compare, rewrite nothing; exit 1 where a figure changed")
    parser.add_argument("--list", action="store_true", help="the figures and where they are")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    parser.add_argument("--docs", type=Path, default=ROOT,
                        help="the folder holding README.md and docs/ (default: this clone)")
    args = parser.parse_args()
    wanted = [n for n in args.only.split(",") if n]
    unknown = sorted(set(wanted) - {fig.name for fig in FIGURES})
    if unknown:
        print(f"docs_figures: --only: no figure {unknown[0]!r} (see --list)", file=sys.stderr)
        return 2
    figures = [fig for fig in FIGURES if (not wanted or fig.name in wanted)
               and (fig.cheap or not args.cheap)]
    if args.list:
        for fig in figures:
            print(f"{fig.name:30} {fig.document}{'  (cheap)' if fig.cheap else ''}")
        return 0
    changed = []
    PLOTS["write"] = not args.check
    with tempfile.TemporaryDirectory() as tmp:
        scratch = args.keep or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        for fig in figures:
            path = args.docs / fig.document
            text = path.read_text()
            found = block_pattern(fig.name).search(text)
            if found is None:
                print(f"docs_figures: {fig.document}: no block for {fig.name!r}",
                      file=sys.stderr)
                return 2
            t0 = time.perf_counter()
            fresh = fig.make(scratch)
            text = path.read_text()  # as it is now: edits made meanwhile are kept
            found = block_pattern(fig.name).search(text)
            assert found is not None, f"{fig.document}: the block {fig.name!r} went away"
            same = masked(found.group(2), fig.volatile) == masked(fresh, fig.volatile)
            print(f"{fig.name}: {'unchanged' if same else 'CHANGED'} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            if not same:
                changed.append(fig)
            if not args.check and found.group(2) != fresh:
                path.write_text(text[:found.start(2)] + fresh + text[found.end(2):])
    if args.check and changed:
        for fig in changed:
            print(f"docs_figures: {fig.document}: the figures of {fig.name!r} no longer come "
                  f"out as documented: python benchmarks/docs_figures.py --only {fig.name}",
                  file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
