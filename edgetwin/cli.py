"""The `edgetwin` command: one entry point over every package's subcommands."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from edgetwin.common.errors import InputError
from edgetwin.common.version import package_version


class _Parser(argparse.ArgumentParser):
    """Bad flags get one line and exit status 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from edgetwin.calibration import commands as calibration_commands
    from edgetwin.emulator import commands as emulator_commands
    from edgetwin.emulator.flower.commands import add_protocol_parser
    from edgetwin.emulator.sweep.commands import add_sweep_parser
    from edgetwin.emulator.trace_commands import add_traces_parser
    from edgetwin.hil import commands as hil_commands
    from edgetwin.hil.hooks import attached_target, validation_observer
    from edgetwin.profiles import commands as profile_commands

    parser = _Parser(prog="edgetwin", description="A calibrated digital twin of an edge "
                     "fleet that fine-tunes LLMs by federated learning.")
    parser.add_argument("--version", action="version", version=f"edgetwin {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    profile_commands.add_workload_parser(sub)
    profile_commands.add_profiles_parser(sub)
    emulator_commands.add_simulate_parser(sub, observer_for=validation_observer)
    emulator_commands.add_scenarios_parser(sub)
    add_protocol_parser(sub)
    add_sweep_parser(sub)
    add_traces_parser(sub)
    calibration_commands.add_calibrate_parser(sub, attached=attached_target)
    hil_commands.add_devices_parser(sub)
    hil_commands.add_agent_parser(sub)
    hil_commands.add_replay_parser(sub)
    return parser


@contextmanager
def _library_warnings_quiet() -> Iterator[None]:
    """A command's console is for its own lines: the libraries' deprecations and
    matplotlib's layout notes (torch, transformers, PEFT, Flower) are for their
    developers, not for a user of edgetwin. edgetwin's own warnings are `warning:` lines."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
            warnings.simplefilter("ignore", category)
        warnings.filterwarnings("ignore", category=UserWarning, module="matplotlib")
        warnings.filterwarnings("ignore", category=UserWarning, module="peft")
        yield


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _library_warnings_quiet():
            return int(args.func(args))
    except InputError as err:
        print(f"edgetwin: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgetwin: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if _device_error(err):
            print(f"edgetwin: error: {err}", file=sys.stderr)
            return 3
        raise


def _device_error(err: Exception) -> bool:
    """A link to a device or its agent failed (imported only then: a simulation never
    loads the device code)."""
    from edgetwin.hil.link import AgentError
    from edgetwin.hil.transports import LinkError

    return isinstance(err, LinkError | AgentError)


if __name__ == "__main__":
    sys.exit(main())
