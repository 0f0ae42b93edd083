"""The attached-device commands: `devices install|check`, `agent` and `replay`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgetwin.common.console import err_console, out_console
from edgetwin.common.errors import InputError
from edgetwin.hil.inventory import load_inventory


def add_devices_parser(sub: Any) -> None:
    p = sub.add_parser("devices", help="attached devices: install the agent, check them",
                       description="Work with the devices of a devices.yaml inventory "
                       "(docs/devices.md).")
    dsub = p.add_subparsers(dest="devices_command", required=True, parser_class=type(p))
    inst = dsub.add_parser("install", help="put the agent on a device (all by default)")
    inst.add_argument("devices", type=Path, metavar="DEVICES.yaml")
    inst.add_argument("names", nargs="*", metavar="NAME")
    inst.add_argument("--wheel", type=Path, default=None,
                      help="the edgetwin wheel to install (default: built from this tree)")
    inst.add_argument("--native-binary", type=Path, default=None,
                      help="a native runner built for the device (adb: with the NDK)")
    inst.set_defaults(func=run_install)
    chk = dsub.add_parser("check", help="connect to each device and print what it is")
    chk.add_argument("devices", type=Path, metavar="DEVICES.yaml")
    chk.add_argument("names", nargs="*", metavar="NAME")
    chk.add_argument("--json", action="store_true", help="one JSON object per device")
    chk.set_defaults(func=run_check)


def add_agent_parser(sub: Any) -> None:
    from edgetwin.hil.agent.server import build_parser

    p = sub.add_parser("agent", help="the device-side agent (started by a transport)",
                       description="Speak the agent protocol on stdin/stdout; never listens "
                       "on a network port.")
    build_parser(p)
    p.set_defaults(func=_run_agent)


def _run_agent(args: argparse.Namespace) -> int:
    from edgetwin.hil.agent.server import run_agent

    return run_agent(args)


def run_install(args: argparse.Namespace) -> int:
    from edgetwin.hil.install import install

    if args.wheel is not None:  # refused before any device is touched
        import zipfile

        if not args.wheel.is_file():
            raise InputError(str(args.wheel), "--wheel", "no such file")
        if args.wheel.suffix != ".whl" or not zipfile.is_zipfile(args.wheel) or \
                not args.wheel.name.startswith("edgetwin-"):
            raise InputError(str(args.wheel), "--wheel", "not an edgetwin wheel "
                             "(edgetwin-VERSION-py3-none-any.whl: pip wheel --no-deps .)")
    if args.native_binary is not None and not args.native_binary.is_file():
        raise InputError(str(args.native_binary), "--native-binary", "no such file")
    inventory = load_inventory(args.devices)
    devices = [inventory.get(n) for n in args.names] if args.names else inventory.devices
    for d in devices:
        install(d, wheel=args.wheel, native_binary=args.native_binary,
                log=lambda line: print(line, file=sys.stderr))
    return 0


def run_check(args: argparse.Namespace) -> int:
    import json

    from rich.table import Table

    from edgetwin.hil.device_check import COLUMNS, check_all

    rows = check_all(load_inventory(args.devices), args.names or None)
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
    else:
        table = Table(title=f"devices of {args.devices}", title_justify="left")
        for col in COLUMNS:
            table.add_column(col)
        for row in rows:
            table.add_row(*[str(row.get(c, "-")) for c in COLUMNS])
        out_console(160).print(table)
    return 0 if all(r.get("reachable") == "yes" for r in rows) else 1


def add_replay_parser(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay sampled sessions of a run on attached devices",
                       description="Run a stratified sample of an emulated run's sessions on "
                       "the attached devices standing for their profiles; report predicted "
                       "against measured, and whether the emulator's decisions hold.")
    p.add_argument("run", type=Path, metavar="RUN_DIR")
    p.add_argument("--devices", type=Path, required=True, metavar="DEVICES.yaml")
    p.add_argument("--sample", type=int, default=40, help="sessions to replay (default 40)")
    p.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    p.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/replay")
    p.add_argument("--recalibrate", action="store_true",
                   help="write a corrected profile per device class, scored on half the "
                   "sessions")
    p.add_argument("--retries", type=int, default=3,
                   help="reconnections of a failing device before it gives up (default 3)")
    p.add_argument("--allow-lost", action="store_true",
                   help="exit 0 when some sessions were lost (not all), the report covering "
                   "the rest")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from edgetwin.common.errors import InputError
    from edgetwin.hil.replay import run as rp
    from edgetwin.hil.replay.crosscheck import crosscheck
    from edgetwin.hil.replay.recalibrate import recalibrate
    from edgetwin.hil.replay.report import write_report

    if args.sample <= 0:
        raise InputError("--sample", str(args.sample), "must be > 0")
    if args.retries < 0:
        raise InputError("--retries", str(args.retries), "must be >= 0")
    out = args.out or args.run / "replay"
    prepared = rp.prepare(args.run, args.devices)
    options = rp.ReplayOptions(args.sample, args.seed, args.retries)
    journal, todo = rp.open_journal(prepared, args.devices, out, options)
    console = err_console()
    total = len(journal.header["sample"])
    busy: set[str] = set()
    errors = [0]
    with Progress(TextColumn("[bold]replay"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[state]}"), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True,
                  disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("", total=total, completed=total - len(todo), state="")

        def show() -> None:
            bar.update(task, state=f"devices busy: {', '.join(sorted(busy)) or '-'}; "
                       f"errors {errors[0]}")

        def done(device: str, ok: bool) -> None:
            bar.advance(task)
            show()

        def error(device: str, line: str) -> None:
            errors[0] += 1
            console.print(f"edgetwin: {line}")
            show()

        def set_busy(device: str, on: bool) -> None:
            (busy.add if on else busy.discard)(device)
            show()

        pool = rp.DevicePool(prepared, journal, options, rp.Progress(done, error, set_busy))
        try:
            pool.run(todo)
        except KeyboardInterrupt:
            console.print(f"interrupted: {len(journal.replayed())} of {total} sessions "
                          f"replayed, journaled in {journal.path}; run the same command to "
                          "carry on")
            return 130
    replayed, lost = journal.replayed(), journal.lost()
    header = {**journal.header, "devices_since_calibration": {
        d: v for d, v in pool.since_calibration.items() if v}}
    report = crosscheck(prepared, header, replayed, lost)
    if args.recalibrate:
        report["recalibration"] = recalibrate(prepared, replayed, out, args.seed)
    write_report(report, replayed, out, plots=not args.no_plots)
    _print_replay(report, out)
    return _lost_status(len(lost), len(replayed) + len(lost), args.allow_lost)


def _lost_status(lost: int, sampled: int, allow_lost: bool) -> int:
    """1 where sessions were lost (all of them, or some without --allow-lost), with a line
    that says what to do; 0 otherwise."""
    if not lost:
        return 0
    if lost == sampled:
        print(f"edgetwin: replay: all {sampled} sessions were lost (journal.jsonl has each "
              "reason): nothing was measured", file=sys.stderr)
        return 1
    if allow_lost:
        return 0
    print(f"edgetwin: replay: {lost} of {sampled} sessions were lost (journal.jsonl has each "
          "reason): the report covers the others; the same command retries them, "
          "--allow-lost accepts the report as it is", file=sys.stderr)
    return 1


def _print_replay(r: dict[str, Any], out: Path) -> None:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v * 100:.1f} %"

    st = r.get("step_time") or {}
    se = r.get("session_time") or {}
    sel = pct(r["selection_agreement"]) if r["selection_agreement"] is not None else \
        "not applicable"
    print(f"verdict: {r['verdict']}: " + "; ".join(r["verdict_reasons"]))
    print(f"replayed {r['sessions_replayed']} of {r['sessions_sampled']} sessions "
          f"({r['sessions_lost']} lost): step time median |error| "
          f"{pct(st.get('median_abs_error'))} ({pct(st.get('within_10pct'))} within +-10 %), "
          f"session time {pct(se.get('median_abs_error'))}; 90 % intervals cover "
          f"{pct(r['interval_coverage_90'])}; Brier {_num(r['brier'])}; decisions agree "
          f"{pct(r['decision_agreement'])} (timing-sensitive "
          f"{pct(r['decision_agreement_sensitive'])} of {r['sensitive_sessions']}); "
          f"selection agreement {sel}")
    print(f"wrote {out}/ (crosscheck.md, crosscheck.json, journal.jsonl, plots)")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
