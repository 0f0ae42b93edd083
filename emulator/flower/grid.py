"""A Flower `Grid` whose clock is the emulator's: a ServerApp runs as it is, and every
message's fate and timing come from the session model.

`get_node_ids` gives the clients free, online and charged enough at the current virtual
time (node id = client + FIRST_NODE_ID; `partition-id` in a node's config is the client,
as in client_sessions.csv). `send_and_receive` plans each addressed client's session
(download of the message's arrays, local steps at the device's cost, upload of the
reply's arrays), cuts it at the timeout (the strategy's, capped by the scenario's
deadline), runs the ClientApps of the sessions that complete for real, and returns
their replies; the others are recorded with their cause and never reply, as a node that
fails or is late never does. The clock then moves to the last reply, or to the timeout
if some never came. Nothing waits on the wall clock.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from emulator.engine import F64, I64, IDLE_RETRY_S, Engine, RoundRow
from emulator.flower.workers import Workers
from emulator.margins import Cut
from emulator.session import COMPLETED, DEADLINE, Outcome, Planned, SessionCosts

FIRST_NODE_ID = 2  # Flower's SuperLink is node 1
EVALUATE_STEP_SHARE = 1 / 3  # an evaluate message runs forward passes only
METRICS_BYTES = 2_048.0  # a reply with metrics and no arrays
WAIT_ASKS = 2  # node lists a strategy asks for per exchange before it is waiting


class StopRun(Exception):
    """A scenario's stop rule was reached: the ServerApp is stopped at its next exchange."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Exchange:
    """One `send_and_receive`: when, the app's round (its `group_id`), and its cost."""

    index: int
    server_round: int | None  # the app's round: its config's `server-round`, or group id
    message_type: str
    start_s: float
    end_s: float
    sent: int
    replied: int
    energy_j: float
    upload_bytes: float
    download_bytes: float


@dataclass
class GridLog:
    exchanges: list[Exchange] = field(default_factory=list)


def server_round(msg: Message) -> int | None:
    """The app's round a message belongs to, where it says (Flower's strategies put
    `server-round` in the config they send)."""
    for record in msg.content.config_records.values():
        value = record.get("server-round")
        if isinstance(value, int):
            return value
    group = msg.metadata.group_id
    return int(group) if group.isdigit() else None


def message_bytes(content: RecordDict) -> float:
    """The bytes of a RecordDict's arrays as they travel (each array's serialised data)."""
    total = 0
    for record in content.array_records.values():
        total += sum(len(array.data) for array in record.values())
    return float(total) + METRICS_BYTES


class VirtualGrid(Grid):
    """The emulated fleet as Flower's Grid: one node per client."""

    def __init__(self, engine: Engine, workers: Workers, run_config: dict[str, Any],
                 run_id: int = 1) -> None:
        self.engine = engine
        self.workers = workers
        self.now_s = 0.0
        self.log = GridLog()
        self._run = Run.create_empty(run_id)
        self._asks = 0  # calls of get_node_ids since the last exchange
        self._pending: list[Message] = []
        f = engine.fleet
        groups = [g.name for g in engine.scenario.fleet.groups]
        self.contexts = [Context(run_id=run_id, node_id=c + FIRST_NODE_ID, node_config={
            "partition-id": c, "num-partitions": f.n, "edgetwin-group": groups[f.group[c]],
            "lora-rank": int(f.rank[c])}, state=RecordDict(), run_config=dict(run_config))
            for c in range(f.n)]

    # --- the Grid interface ---------------------------------------------------------------
    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        """Clients free, online and charged enough now. Asked more than WAIT_ASKS times
        between two exchanges (a strategy waiting for nodes to connect), the clock moves
        on by IDLE_RETRY_S each time."""
        self._asks += 1
        if self._asks > WAIT_ASKS:
            self.now_s += IDLE_RETRY_S
        self._check_stop()
        model, f = self.engine.model, self.engine.fleet
        c = np.arange(f.n)
        t = np.full(f.n, self.now_s)
        ok = model.availability.online(c, t) & (self.engine.busy_until_s <= self.now_s)
        ok &= model.charged_enough(c, model.battery_at(c, t))
        return [int(i) + FIRST_NODE_ID for i in np.flatnonzero(ok)]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Sent and answered at once (`pull_messages` gives the replies): the exchange is
        the same as `send_and_receive` without a timeout."""
        sent = list(messages)
        self._pending = list(self.send_and_receive(sent))
        return [m.metadata.message_id for m in sent]

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        wanted = set(message_ids)
        return [m for m in self._pending if m.metadata.reply_to_message_id in wanted]

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        msgs = list(messages)
        self._asks = 0
        if not msgs:
            return []
        self._check_stop()
        t0 = self.now_s
        clients = self._address(msgs)
        cut_s = t0 + min(timeout if timeout is not None else math.inf,
                         self.engine.scenario.orchestration.deadline_s)
        kind = msgs[0].metadata.message_type.split(".")[0]
        down = np.array([message_bytes(m.content) for m in msgs])
        key = len(self.log.exchanges)
        # a train reply carries arrays like the message's; priced again at its real size
        up = down.copy() if kind == "train" else np.full(len(msgs), METRICS_BYTES)
        planned, outcome = self._sessions(clients, t0, key, kind, down, up, cut_s)
        done = np.flatnonzero(outcome.status == COMPLETED)
        replies = self._run_clients([msgs[i] for i in done], clients[done])
        up[done] = [message_bytes(r.content) if r.has_content() else METRICS_BYTES
                    for r in replies]
        if len(done) and not np.array_equal(up[done], planned.upload_bytes[done]):
            planned, outcome = self._sessions(clients, t0, key, kind, down, up, cut_s)
            still = outcome.status[done] == COMPLETED  # a longer reply can miss the cut
            replies = [r for r, ok in zip(replies, still, strict=True) if ok]
            done = done[still]
        rnd = np.full(len(msgs), key, dtype=np.int64)
        self.engine.launch(clients)
        cuts = np.full(len(msgs), cut_s)
        self.engine.record(planned, outcome, rnd, cuts, DEADLINE, bounds=Cut(
            at_s=cuts, status=np.full(len(msgs), DEADLINE, dtype=np.int64)))
        arrivals = outcome.end_s[done]
        self.now_s = float(arrivals.max()) if len(done) == len(msgs) else cut_s
        self._log(key, msgs[0], t0, len(msgs), replies, outcome)
        order = np.argsort(arrivals, kind="stable")
        return [replies[i] for i in order]

    # --- the parts ----------------------------------------------------------------------------
    def _address(self, msgs: list[Message]) -> I64:
        clients = np.array([m.metadata.dst_node_id - FIRST_NODE_ID for m in msgs],
                           dtype=np.int64)
        if clients.min() < 0 or clients.max() >= self.engine.fleet.n:
            last = FIRST_NODE_ID + self.engine.fleet.n - 1
            raise ValueError(f"a message is addressed to a node this grid does not have "
                             f"(node ids {FIRST_NODE_ID} to {last})")
        for m in msgs:
            m.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            m.metadata.__dict__["_src_node_id"] = SUPERLINK_NODE_ID
            m.metadata.__dict__["_run_id"] = self._run.run_id
        return clients

    def _sessions(self, c: I64, t0: float, key: int, kind: str, down: F64, up: F64,
                  cut_s: float) -> tuple[Planned, Outcome]:
        """Sessions priced by the group's nominal step and power, moving these bytes, and
        what they had done at the cut."""
        model = self.engine.model
        ct, k = model.costs, self.engine.fleet.cost_index[c]
        share = {"train": 1.0, "evaluate": EVALUATE_STEP_SHARE}.get(kind, 0.0)
        costs = SessionCosts(step_s=ct.step_s[k] * share, busy_w=ct.busy_w[k],
                             peak_memory_mb=ct.peak_memory_mb[k], download_bytes=down,
                             upload_bytes=up)
        planned = model.plan(c, np.full(len(c), t0), key, costs)
        return planned, model.account(planned, np.full(len(c), cut_s), DEADLINE)

    def _run_clients(self, msgs: list[Message], clients: I64) -> list[Message]:
        """The ClientApps of the sessions that complete, for real; contexts kept."""
        jobs = [(m, self.contexts[int(c)]) for m, c in zip(msgs, clients, strict=True)]
        out = self.workers.run(jobs) if jobs else []
        for (_, context), c in zip(out, clients, strict=True):
            self.contexts[int(c)] = context
        return [reply for reply, _ in out]

    def _log(self, key: int, first: Message, t0: float, sent: int, replies: list[Message],
             outcome: Outcome) -> None:
        row = RoundRow(round=key, start_s=t0, closed_s=self.now_s, end_s=self.now_s,
                       selected=sent, reported=len(replies), aggregated=bool(replies),
                       energy_j=float(outcome.energy_j.sum()),
                       upload_bytes=float(outcome.upload_bytes.sum()),
                       download_bytes=float(outcome.download_bytes.sum()))
        self.engine.round_done(row)
        self.log.exchanges.append(Exchange(
            index=key, server_round=server_round(first),
            message_type=first.metadata.message_type,
            start_s=t0, end_s=self.now_s, sent=sent, replied=len(replies),
            energy_j=row.energy_j, upload_bytes=row.upload_bytes,
            download_bytes=row.download_bytes))

    def _check_stop(self) -> None:
        """The scenario's own stop rules (time, energy, traffic); the app sets its rounds."""
        st, log = self.engine.scenario.stop, self.engine.log
        for hit, why in ((st.virtual_time_s is not None and self.now_s >= st.virtual_time_s,
                          "virtual_time"),
                         (st.energy_j is not None and log.energy_j >= st.energy_j, "energy"),
                         (st.traffic_bytes is not None and log.traffic_bytes >= st.traffic_bytes,
                          "traffic")):
            if hit:
                raise StopRun(why)
