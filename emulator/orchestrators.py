"""The orchestrators, by the mode a scenario names: the server process of synchronous
rounds (`edgetwin.emulator.sync_rounds`) and of buffered asynchronous aggregation
(`edgetwin.emulator.async_rounds`). Configuration names a mode, never an implementation; the
engine asks here. A Flower app's ServerApp drives the engine through its virtual-time
grid in place of either (`edgetwin.emulator.flower`)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

from edgetwin.emulator.async_rounds import AsyncRounds
from edgetwin.emulator.sync_rounds import SyncRounds

if TYPE_CHECKING:
    from edgetwin.emulator.engine import Engine


class Orchestrator(Protocol):
    def serve(self) -> Generator[Any, Any, None]:
        """The server process."""

    def finish(self, now_s: float) -> None:
        """The run stopped at `now_s`: settle what is still in flight."""


ORCHESTRATORS: dict[str, Callable[[Engine], Orchestrator]] = {
    "sync": SyncRounds,
    "async": AsyncRounds,
}


def orchestrator_for(engine: Engine) -> Orchestrator:
    """The server process of the engine's scenario's mode."""
    return ORCHESTRATORS[engine.scenario.orchestration.mode](engine)
