"""sweep.md: per setting the mean and 95 % interval of each compared metric, the best
setting per metric and by how much, each group's share of the updates, the failed runs
and the plots."""

from __future__ import annotations

from pathlib import Path

from edgetwin.emulator.sweep.metrics import UPDATE_SHARE, direction
from edgetwin.emulator.sweep.results import SettingResult, best, no_best_reason, reached
from edgetwin.emulator.sweep.runner import SweepRun
from edgetwin.emulator.sweep.units import interval, shown, title, unit


def write_report(run: SweepRun, results: list[SettingResult], metrics: list[str],
                 rows: list[dict[str, str]], plots: list[str], path: Path) -> None:
    """`metrics`: the compared ones, each as the sweep names it (`NAME` or `NAME:max`)."""
    names = [m.split(":")[0] for m in metrics]
    plan = run.plan
    keys = [a.key for a in plan.spec.axes]
    seeds = plan.seeds
    lines = [f"# Sweep: {plan.name}", "",
             f"Scenario `{plan.spec.scenario}`: {len(plan.settings)} settings x "
             f"{len(seeds)} seeds ({_seeds(seeds)}) = {len(plan.runs)} runs. {_ran(run)}"]
    if run.others:
        lines += ["", f"`runs/` also holds {run.others} run folders that are no run of this "
                  "sweep (an earlier grid, other seeds, or another edgetwin version); they are "
                  "left as they are."]
    if run.not_run:
        lines += ["", f"**Incomplete:** {run.not_run} runs have not run yet; the same command "
                  "carries on where this one stopped."]
    lines += ["", "Each cell is the mean over the setting's seeds ± the half-width of its 95 % "
              "confidence interval (Student's t). Every setting runs the same seeds, so two "
              f"settings are compared seed by seed. Time to {plan.target_rounds} rounds counts "
              "rounds that aggregated; a run that stopped before has no value, and a cell "
              "over fewer runs than the setting's says how many of its seeds have a value (`2 of 3 "
              "seeds`). A setting is named best only where most of its seeds have a value, "
              "and where some setting has one in every seed, only among those.", ""]
    if plan.warnings:
        lines += ["Warnings of the scenario:", "", *[f"- {w}" for w in plan.warnings], ""]
    lines += ["## Settings", "", _table(
        ["#", *keys, "runs", *[title(m) for m in names]],
        [[str(r.index), *r.values.values(), _runs(r),
          *[cell(r, m) for m in names]] for r in results]), ""]
    lines += ["## Best setting per metric", ""]
    for m in metrics:
        lines.append(_best_line(results, m))
    lines.append("")
    shares = [UPDATE_SHARE.format(group=g) for g in plan.group_names]
    if any(s in r.by_seed for r in results for s in shares):
        lines += ["## Participation per group", "", "Each group's share of the aggregated "
                  "updates (%): which devices the setting lets train the model.", "", _table(
                      ["#", *keys, *plan.group_names],
                      [[str(r.index), *r.values.values(), *[shown(r.estimate(s), s)
                                                           for s in shares]]
                       for r in results]), ""]
    failed = [row for row in rows if row["status"] != "ok"]
    if failed:
        lines += ["## Failed runs", "", _table(
            ["#", "seed", "error"], [[row["setting"], row["seed"], row["error"]]
                                     for row in failed]), ""]
    if plots:
        lines += ["## Plots", "", *[f"![{p}]({p})" for p in plots], ""]
    lines += ["Every run's folder is `runs/<run id>` (sweep.csv's `run` column); "
              "`edgetwin sweep --compare A B` sets two settings side by side."]
    path.write_text("\n".join(lines) + "\n")


def _best_line(results: list[SettingResult], metric: str) -> str:
    b = best(results, metric)
    name = metric.split(":")[0]
    if direction(metric) is None:
        return f"- {title(name)}: no better side known (`{name}:max` or `:min` names it)"
    way = "higher" if direction(metric) == "max" else "lower"
    if b is None:
        return f"- {title(name)}, {way} is better: none named: {no_best_reason(results, name)}"
    head = f"- {title(name)}, {way} is better: **#{b.setting.index}** " \
           f"({b.setting.label()}) {shown(b.value, name)}"
    if reached(b.setting, name) < b.setting.ok:
        head += f" (over the {reached(b.setting, name)} of {b.setting.ok} seeds that have one)"
    if b.runner_up is None or b.margin is None:
        return head
    d = b.margin.diff
    label, scale = unit(name)
    label = "pp" if label == "%" else label  # a difference of shares: percentage points
    gap = f"{interval(abs(d.mean), d.half_width, scale)} {label}".rstrip()
    how = "paired over seeds" if b.margin.paired else "Welch"
    if b.margin.significant:
        return f"{head}; ahead of #{b.runner_up.index} by {gap} ({how})"
    return f"{head}; not told apart from #{b.runner_up.index} at 95 % ({gap}, {how})"


def _ran(run: SweepRun) -> str:
    failed = sum(1 for status, _ in run.statuses.values() if status == "failed")
    now = f"{run.computed} ran now on {run.executor}" if run.computed else "None ran now"
    again = f" ({len(run.damaged)} of them damaged since and run again)" if run.damaged else ""
    return f"{now}{again}, {run.kept} were kept from before, {failed} failed."


def cell(r: SettingResult, metric: str) -> str:
    """A setting's mean ± interval, with how many seeds have a value where not all do."""
    e = r.estimate(metric)
    if e.n < r.ok:  # a target some seeds did not reach: say how many did
        return f"{shown(e, metric)} ({e.n} of {r.ok} seeds)" if e.n else f"- (0 of {r.ok} seeds)"
    return shown(e, metric)


def _runs(r: SettingResult) -> str:
    return f"{r.runs - r.failed}" + (f" ({r.failed} failed)" if r.failed else "")


def _seeds(seeds: tuple[int, ...]) -> str:
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]} to {seeds[-1]}"
    return "seeds " + ", ".join(str(s) for s in seeds)


def _table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(out)
