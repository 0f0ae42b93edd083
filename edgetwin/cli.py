"""The `edgetwin` command: one entry point over every package's subcommands."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from edgetwin.common.errors import InputError
from edgetwin.common.version import package_version


class _Parser(argparse.ArgumentParser):
    """Bad flags get one line and exit status 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_workload(sub: Any) -> None:
    from edgetwin.profiles import commands

    commands.add_workload_parser(sub)


def _add_profiles(sub: Any) -> None:
    from edgetwin.profiles import commands

    commands.add_profiles_parser(sub)


def _add_simulate(sub: Any) -> None:
    from edgetwin.emulator import commands
    from edgetwin.hil.hooks import validation_observer

    commands.add_simulate_parser(sub, observer_for=validation_observer)


def _add_scenarios(sub: Any) -> None:
    from edgetwin.emulator import commands

    commands.add_scenarios_parser(sub)


def _add_protocol(sub: Any) -> None:
    from edgetwin.emulator.flower.commands import add_protocol_parser

    add_protocol_parser(sub)


def _add_sweep(sub: Any) -> None:
    from edgetwin.emulator.sweep.commands import add_sweep_parser

    add_sweep_parser(sub)


def _add_traces(sub: Any) -> None:
    from edgetwin.emulator.trace_commands import add_traces_parser

    add_traces_parser(sub)


def _add_calibrate(sub: Any) -> None:
    from edgetwin.calibration import commands
    from edgetwin.hil.hooks import attached_target

    commands.add_calibrate_parser(sub, attached=attached_target)


def _add_devices(sub: Any) -> None:
    from edgetwin.hil import commands

    commands.add_devices_parser(sub)


def _add_agent(sub: Any) -> None:
    from edgetwin.hil import commands

    commands.add_agent_parser(sub)


def _add_replay(sub: Any) -> None:
    from edgetwin.hil import commands

    commands.add_replay_parser(sub)


# each subcommand's parser, in the order `edgetwin --help` lists them
COMMANDS: dict[str, Callable[[Any], None]] = {
    "workload": _add_workload, "profiles": _add_profiles, "simulate": _add_simulate,
    "scenarios": _add_scenarios, "protocol": _add_protocol, "sweep": _add_sweep,
    "traces": _add_traces, "calibrate": _add_calibrate, "devices": _add_devices,
    "agent": _add_agent, "replay": _add_replay}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; where `argv` starts with a subcommand, only that one's
    parser is built (each imports its package's commands: a simulation need not load
    the device code or the profilers to read its flags)."""
    parser = _Parser(prog="edgetwin", description="A calibrated digital twin of an edge "
                     "fleet that fine-tunes LLMs by federated learning.")
    parser.add_argument("--version", action="version", version=f"edgetwin {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    named = argv[0] if argv else None  # the line's own options (-h, --version) exit
    for name, add in COMMANDS.items():
        if named not in COMMANDS or name == named:
            add(sub)
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
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
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
