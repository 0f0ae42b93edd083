"""crosscheck.json, crosscheck.md and the plots of a replay."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

from edgetwin.hil.replay.crosscheck import METRICS

LABELS = {"step_time": "step time", "session_time": "session time",
          "peak_memory": "peak memory", "energy": "energy"}
UNITS = {"step_time": ("step_s", "median_step_s", "s"),
         "session_time": ("compute_s", "compute_s", "s"),
         "peak_memory": ("peak_memory_mb", "peak_memory_mb", "MiB"),
         "energy": ("energy_j", "energy_j", "J")}


def write_report(report: dict[str, Any], replayed: list[dict[str, Any]], out: Path,
                 plots: bool = True) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "crosscheck.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    names = write_plots(replayed, report, out) if plots else []
    (out / "crosscheck.md").write_text(markdown(report, names))
    return names


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:+.1f} %" if v < 0 else f"{v * 100:.1f} %"


def _share(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f} %"


def _row(name: str, f: dict[str, Any]) -> str:
    cells = []
    for m in METRICS:
        s = f.get(m)
        cells.append("n/a" if s is None else
                     f"{s['median_abs_error'] * 100:.1f} % ({s['within_10pct'] * 100:.0f} %)")
    return (f"| {name} | {f.get('sessions', 0)} | " + " | ".join(cells) +
            f" | {_share(f.get('decision_agreement'))} |")


def markdown(r: dict[str, Any], plots: list[str]) -> str:
    head = "| | sessions | " + " | ".join(LABELS[m] for m in METRICS) + " | decisions agree |"
    rule = "|---|---:|" + "---:|" * len(METRICS) + "---:|"
    lines = [
        f"# Cross-check of {Path(r['run']).name} on attached devices", "",
        f"**Verdict: {r['verdict']}.**", "",
        *(f"- {reason}" for reason in r["verdict_reasons"]), "",
        f"Run `{r['run']}`, devices `{r['devices']}`, sample seed {r['seed']}: "
        f"{r['sessions_sampled']} sessions sampled, {r['sessions_replayed']} replayed, "
        f"{r['sessions_lost']} lost.", "",
        "| score | value |", "|---|---:|",
        f"| 90 % intervals cover (sessions) | {_share(r['interval_coverage_90'])} "
        f"({r['interval_sessions']}) |",
        f"| Brier score of p_complete (expected if calibrated) | {_num(r['brier'])} "
        f"({_num(r['brier_expected'])}) |",
        f"| calibration z (sessions the twin was unsure of) | {_num(r['calibration_z'])} "
        f"({r['unsure_sessions']}) |",
        f"| decisions the twin was sure of that flipped | {r['sure_flips']} of "
        f"{r['sure_sessions']} |",
        f"| step time bias, 95 % interval | {_bias(r['bias'])} |",
        f"| decisions agree, timing-sensitive sessions | "
        f"{_share(r['decision_agreement_sensitive'])} ({r['sensitive_sessions']}) |", "",
        "Each cell below: median |error| of the prediction (share within +-10 %). Error is "
        "predicted / measured - 1. Decisions agree: the session's outcome is the same when "
        "its round is derived again with the measured figures (every session of the round "
        "at its group's measured factor, the round's close recomputed).", "",
        head, rule, _row("all", r),
        *(_row(f"stratum: {k.replace('_', '-')}", v) for k, v in r["strata"].items()),
        *(_row(f"device: {k}", v) for k, v in r["per_device"].items()), ""]
    lines += ["Decisions by margin (the factor on its compute time at which a session's "
              "outcome changes):", "", "| margin | sessions | decisions agree |",
              "|---|---:|---:|"]
    what = {"sensitive": "within x1.25 either way", "robust": "beyond x1.25",
            "fixed": "none: no compute time changes it (agrees by construction)"}
    for c, v in r["decision_agreement_by_margin"].items():
        lines.append(f"| {what[c]} | {v['sessions']} | {_share(v['decision_agreement'])} |")
    lines += [""]
    signed = ", ".join(f"{LABELS[m]} {_pct(r[m]['mean_signed_error'])}" for m in METRICS
                       if r.get(m))
    lines += [f"Mean signed error: {signed}.", ""]
    sel = r.get("selection_agreement")
    if sel is None:
        lines += [f"Selection agreement: {r.get('selection_agreement_note') or '-'}.", ""]
    else:
        lines += [f"Selection agreement: {sel * 100:.1f} % of the clients the policy selected "
                  "in the sampled rounds stay selected when each group's costs are scaled by "
                  "what its devices measured"
                  + (" (" + ", ".join(f"{g} {v * 100:.1f} %" for g, v in
                                      r["selection_agreement_by_group"].items()) + ")"
                     if r["selection_agreement_by_group"] else "") + ".", ""]
    drift = r.get("devices_since_calibration") or {}
    if drift:
        lines += ["Devices against their calibration (a fixed probe timed now and when the "
                  "profile was calibrated): " + "; ".join(
                      f"{d}: x{v['probe_ratio']:.2f}" + (", busy now" if v.get("busy") else "")
                      for d, v in sorted(drift.items())) + ".", ""]
    t = r["transfers"]
    lines += ["Transfers (medians): download modelled on the clients' links "
              f"{_s(t['download_s']['modelled'])}, measured on the devices' own "
              f"{_s(t['download_s']['measured'])}; upload {_s(t['upload_s']['modelled'])} "
              f"and {_s(t['upload_s']['measured'])} (serialising the tensors before it "
              f"{_s(t['serialize_s']['measured'])}). The decisions keep the modelled ones: a "
              "group's link describes a population, not the cable to the test device.", ""]
    if r["upload_bytes_mismatches"]:
        lines += [f"Upload bytes differing from the workload model: "
                  f"{len(r['upload_bytes_mismatches'])} sessions.", ""]
    else:
        lines += ["Upload bytes: every replayed session sent exactly the predicted bytes.", ""]
    if r["disagreements"]:
        lines += ["## Decisions that flip", "", "| session | group | device | stratum | "
                  "margin | p_complete | emulated | with measured figures |",
                  "|---:|---|---|---|---:|---:|---|---|"]
        lines += [f"| {d['session']} | {d['group']} | {d['device']} | {d['stratum']} | "
                  f"{_num(d['timing_margin'])} | {_num(d['p_complete'])} | {d['emulated']} | "
                  f"{d['with_measured_figures']} |" for d in r["disagreements"]]
        lines += [""]
    if r["lost"]:
        lines += ["## Lost", "", "| session | device | reason |", "|---:|---|---|"]
        lines += [f"| {e['session']} | {e['device'] or '-'} | {e['reason']} |"
                  for e in r["lost"]]
        lines += [""]
    if r.get("recalibration"):
        lines += ["## Recalibration", "", "| profile | sessions fitted | scored | "
                  "step factor | median |error| before | after | written |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for c in r["recalibration"]:
            before = c["before"]["median_abs_error"] * 100 if c["before"] else None
            after = c["after"]["median_abs_error"] * 100 if c["after"] else None
            lines.append(f"| {c['profile']} | {c['fitted']} | {c['scored']} | "
                         f"x{c['step_factor']:.3f} | {_num(before, 1)} % | {_num(after, 1)} % "
                         f"| {c['file'] if c['written'] else 'no: ' + c['note']} |")
        lines += [""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _num(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _bias(b: dict[str, float] | None) -> str:
    if not b:
        return "-"
    return f"{b['mean'] * 100:+.1f} % ({b['low'] * 100:+.1f} % to {b['high'] * 100:+.1f} %)"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} s"


def write_plots(replayed: list[dict[str, Any]], report: dict[str, Any], out: Path
                ) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [e for e in replayed if not e["measured"].get("out_of_memory")]
    names = []
    fig, axes = plt.subplots(2, 2, figsize=(9, 8))
    for ax, metric in zip(axes.flat, METRICS, strict=True):
        pk, mk, unit = UNITS[metric]
        pts = [(e["predicted"][pk], e["measured"][mk]) for e in ok
               if e["measured"].get(mk) is not None]
        ax.set_title(LABELS[metric])
        if not pts:
            ax.text(0.5, 0.5, "no meter readable", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
            continue
        lo = min(min(p) for p in pts) * 0.8
        hi = max(max(p) for p in pts) * 1.25
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], alpha=0.15,
                        color="grey", label="+-10 %")
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
        for device in sorted({e["device"] for e in ok}):
            mine = [(e["predicted"][pk], e["measured"][mk]) for e in ok
                    if e["device"] == device and e["measured"].get(mk) is not None]
            ax.scatter([m for _, m in mine], [p for p, _ in mine], s=14, label=device)
        ax.set_xlabel(f"measured {unit}")
        ax.set_ylabel(f"predicted {unit}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "predicted_vs_measured.png", dpi=110)
    plt.close(fig)
    names.append("predicted_vs_measured.png")

    from edgetwin.hil.replay.crosscheck import signed_errors

    fig, ax = plt.subplots(figsize=(6, 4))
    for metric in METRICS:
        errs = sorted(abs(x) for x in signed_errors(ok, metric))
        if errs:
            ax.step([x * 100 for x in errs], [(i + 1) / len(errs) for i in range(len(errs))],
                    where="post", label=LABELS[metric])
    ax.axvline(10, color="grey", lw=1, ls="--")
    ax.set_xlabel("|error| %")
    ax.set_ylabel("share of sessions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "error_cdf.png", dpi=110)
    plt.close(fig)
    names.append("error_cdf.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    t0 = min((e["started_at"] for e in ok), default=0.0)
    for device in sorted({e["device"] for e in ok}):
        mine = sorted((e["finished_at"] - t0, signed_errors([e], "step_time"))
                      for e in ok if e["device"] == device)
        xs = [t for t, err in mine if err]
        ys = [err[0] * 100 for _, err in mine if err]
        ax.plot(xs, ys, marker="o", ms=3, lw=1, label=device)
    ax.axhspan(-10, 10, color="grey", alpha=0.15)
    ax.set_xlabel("replay wall time s")
    ax.set_ylabel("step time error %")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "error_over_time.png", dpi=110)
    plt.close(fig)
    names.append("error_over_time.png")
    names.append(_reliability(replayed, report, out, plt))
    return names


def _reliability(replayed: list[dict[str, Any]], report: dict[str, Any], out: Path,
                 plt: Any) -> str:
    """p_complete against how often sessions completed with the measured figures (bins of
    0.1), and decision agreement against the timing margin."""
    completed = {d["session"]: d["with_measured_figures"] for d in report["disagreements"]}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    p = [float(e["predicted"]["p_complete"]) for e in replayed]
    y = [(completed.get(e["session"], e["outcome"]) == "completed") for e in replayed]
    edges = [i / 10 for i in range(11)]
    xs, ys, ns = [], [], []
    for lo, hi in itertools.pairwise(edges):
        inside = [(pi, yi) for pi, yi in zip(p, y, strict=True)
                  if lo <= pi < hi or (hi == 1.0 and pi == 1.0)]
        if inside:
            xs.append(sum(pi for pi, _ in inside) / len(inside))
            ys.append(sum(yi for _, yi in inside) / len(inside))
            ns.append(len(inside))
    left.plot([0, 1], [0, 1], color="grey", lw=1)
    left.scatter(xs, ys, s=[20 + 6 * n for n in ns])
    for x, yv, n in zip(xs, ys, ns, strict=True):
        left.annotate(str(n), (x, yv), textcoords="offset points", xytext=(5, -10),
                      fontsize=7)
    left.set_xlabel("p_complete (predicted)")
    left.set_ylabel("completed with the measured figures")
    left.set_title("reliability of p_complete (points: sessions per bin)")
    margins = [e["predicted"].get("timing_margin") for e in replayed]
    agree = [completed.get(e["session"], e["outcome"]) == e["outcome"] for e in replayed]
    pts = [(abs(math.log(m)), a) for m, a in zip(margins, agree, strict=True) if m]
    if pts:
        right.scatter([math.exp(d) for d, a in pts if a], [1] * sum(a for _, a in pts),
                      marker="o", label="agrees", alpha=0.6)
        right.scatter([math.exp(d) for d, a in pts if not a],
                      [0] * sum(not a for _, a in pts), marker="x", color="C3",
                      label="flips")
        right.axvline(1.25, color="grey", ls="--", lw=1)
        right.set_xscale("log")
        ticks = [t for t in (1, 1.25, 1.5, 2, 3, 5, 10, 20) if t <= max(math.exp(d)
                                                                    for d, _ in pts) * 1.2]
        right.set_xticks(ticks, [f"{t:g}" for t in ticks])
        right.minorticks_off()
        right.set_yticks([0, 1], ["flips", "agrees"])
        right.legend(fontsize=7)
    right.set_xlabel("timing margin (factor either way)")
    right.set_title("decisions against their margin")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=110)
    plt.close(fig)
    return "reliability.png"
