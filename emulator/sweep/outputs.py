"""What a sweep leaves when it stops (finished or not): sweep.csv, sweep.md, the plots,
and a table on the console."""

from __future__ import annotations

from edgetwin.common.console import out_console
from edgetwin.emulator.sweep.curves import write_curves
from edgetwin.emulator.sweep.metrics import UPDATE_SHARE, headline
from edgetwin.emulator.sweep.plots import write_plots
from edgetwin.emulator.sweep.report import cell, write_report
from edgetwin.emulator.sweep.results import SettingResult, by_setting
from edgetwin.emulator.sweep.runner import RUNS, SweepRun
from edgetwin.emulator.sweep.table import CSV_NAME, read_csv, rows_for, write_csv
from edgetwin.emulator.sweep.units import title

REPORT = "sweep.md"


def write_outputs(run: SweepRun, quiet: bool = False) -> None:
    plan = run.plan
    folder = run.folder
    write_csv(plan, rows_for(plan, run.statuses, folder / RUNS), folder / CSV_NAME)
    keys, rows = read_csv(folder / CSV_NAME)
    asked = list(plan.spec.metrics) or headline(plan.target_rounds)  # may say :max or :min
    metrics = [m.split(":")[0] for m in asked]
    results = by_setting(rows, keys, metrics + [UPDATE_SHARE.format(group=g)
                                                for g in plan.group_names])
    ok = [r for r in results if r.ok]
    plots = write_plots(ok, keys, metrics, folder) if ok else []
    plots += write_curves(ok, rows, folder) if ok else []
    write_report(run, results, asked, rows, plots, folder / REPORT)
    if not quiet:
        _print_table(run, results, metrics)


def _print_table(run: SweepRun, results: list[SettingResult], metrics: list[str]) -> None:
    from rich.table import Table

    plan = run.plan
    con = out_console()
    keys = ", ".join(a.key for a in plan.spec.axes)
    t = Table(title=f"{plan.name}: {len(plan.settings)} settings ({keys}) x {len(plan.seeds)} "
              "seeds; "
              f"{run.computed} ran now ({run.executor}), {run.kept} kept, {run.failed} failed, "
              f"{run.not_run} not run, {run.wall_s:.0f} s", title_justify="left")
    t.add_column("#", justify="right")
    for a in plan.spec.axes:  # the key's last part: the title names it whole
        t.add_column(a.key.rsplit(".", 1)[-1], no_wrap=True)
    for col in ("runs", *[title(m) for m in metrics]):
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(str(r.index), *r.values.values(), str(r.ok),
                  *[cell(r, m) for m in metrics])
    con.print(t)
    con.print(f"mean ± 95 % interval over seeds; wrote {run.folder}/ ({CSV_NAME}, {REPORT}, "
              f"plots, {RUNS}/)")
