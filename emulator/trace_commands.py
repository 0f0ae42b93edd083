"""`edgetwin traces`: availability traces from elsewhere made into edgetwin's CSV
(client,start_s,end_s,period_s), for a scenario's `availability.trace`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgetwin.emulator.fedscale import import_fedscale


def add_traces_parser(sub: Any) -> None:
    p = sub.add_parser("traces", help="import availability traces from other tools",
                       description="Convert availability traces of other tools into "
                       "edgetwin's CSV (client,start_s,end_s,period_s) for "
                       "availability.trace.")
    tsub = p.add_subparsers(dest="traces_command", required=True,
                            parser_class=type(p))
    f = tsub.add_parser("import-fedscale", help="a FedScale device availability pickle",
                        description="Convert FedScale's client availability trace (the "
                        "pickled dict of client id -> active/inactive/finish_time, e.g. "
                        "client_behave_trace) into an availability trace CSV.")
    f.add_argument("file", type=Path, metavar="FILE", help="the FedScale pickle")
    f.add_argument("--out", type=Path, required=True, metavar="CSV", help="the CSV to write")
    f.add_argument("--clients", type=int, default=None, metavar="N",
                   help="take only the first N clients by id (default: all)")
    f.set_defaults(func=run_import_fedscale)


def run_import_fedscale(args: argparse.Namespace) -> int:
    """Convert, then print one summary line and a warning where the loop is not exact."""
    s = import_fedscale(args.file, args.out, args.clients)
    print(f"wrote {args.out}: {s.clients:,} clients, {s.intervals:,} intervals, period "
          f"{s.period_s:g} s ({s.period_s / 3600:.1f} h), mean available share "
          f"{s.available_share:.1%}")
    if s.not_dividing:
        _warn(f"{s.not_dividing:,} clients' finish_time does not divide the period "
              f"{s.period_s:g} s: past the first period their pattern restarts at the "
              "period, not at their own finish_time as in FedScale")
    return 0


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)
