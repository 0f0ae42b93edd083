"""A Flower `Grid` whose clock is the emulator's: a ServerApp runs as it is, and every
message's fate and timing come from the session model.

`get_node_ids` gives the clients free, online and charged enough at the current virtual
time (node id = client + FIRST_NODE_ID; `partition-id` in a node's config is the client,
as in client_sessions.csv). `send_and_receive` delivers each node its own copy of its
message (decoded from the wire form, as Flower's runtime does), prices each by what it
carries (`edgetwin.emulator.flower.pricing`: a model to train on, an evaluation, or
control traffic such as SecAgg+'s key exchange), cuts each session at the timeout (the
caller's, capped by the scenario's deadline), runs the ClientApps (with their mods) of
the sessions that complete, and returns their replies; the others are recorded with
their cause and never reply, as a node that fails or is late never does. The clock then
moves to the last reply, or to the timeout if some never came. Nothing waits on the
wall clock: each exchange is a row of rounds.csv, each message one of client_sessions.csv.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from edgetwin.common.arrays import F64, I64
from edgetwin.emulator.engine import Engine
from edgetwin.emulator.flower.pricing import (
    CONTROL,
    EVALUATE,
    EVALUATE_STEP_SHARE,
    KINDS,
    TRAIN,
    message_kind,
    over_the_wire,
    secagg_work,
)
from edgetwin.emulator.flower.pricing import work_s as priced_work_s
from edgetwin.emulator.flower.workers import Workers
from edgetwin.emulator.margins import Cut
from edgetwin.emulator.rounds import IDLE_RETRY_S, MAX_IDLE_S, RoundRow
from edgetwin.emulator.session import COMPLETED, DEADLINE, Outcome, Planned, SessionCosts

FIRST_NODE_ID = 2  # Flower's SuperLink is node 1
POLL_ASKS = 20  # node lists asked for between two exchanges before a poll is a wait


class StopRun(Exception):
    """A scenario's stop rule was reached: the ServerApp is stopped at its next exchange."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ExchangeRow(RoundRow):
    """One `send_and_receive` (or push and pull) as a row of rounds.csv: the round fields
    (`round` counts exchanges) and what it was."""

    message_type: str = ""
    server_round: int | None = None  # the app's round: its config's `server-round`, or group id
    kind: str = ""  # train, evaluate or control (joined with + where they differ)
    stage: str = ""  # the SecAgg+ stage, where it is one
    work_ms: float = 0.0  # the median node's priced work beyond training and transfer


@dataclass
class GridLog:
    exchanges: list[ExchangeRow] = field(default_factory=list)
    kinds: list[I64] = field(default_factory=list)  # each exchange's messages' kinds


def server_round(msg: Message) -> int | None:
    """The app's round a message belongs to, where it says (Flower's strategies put
    `server-round` in the config they send)."""
    for record in msg.content.config_records.values():
        value = record.get("server-round")
        if isinstance(value, int):
            return value
    group = msg.metadata.group_id
    return int(group) if group.isdigit() else None


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
        self._server_thread = threading.get_ident()
        self._waiting_since_s: float | None = None
        f = engine.fleet
        groups = [g.name for g in engine.scenario.fleet.groups]
        every = np.arange(f.n)
        self.contexts = [Context(run_id=run_id, node_id=c + FIRST_NODE_ID, node_config={
            "partition-id": c, "num-partitions": f.n, "edgetwin-group": groups[g],
            "lora-rank": r}, state=RecordDict(), run_config=dict(run_config))
            for c, g, r in zip(range(f.n), f.group[every].tolist(), f.rank[every].tolist(),
                               strict=True)]

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
        """Clients free, online and charged enough now. A server that asks more than
        POLL_ASKS times between two exchanges, without one of Flower's own waits (which
        call `wait`), is polling for nodes in a loop of its own: each further ask waits
        too. Asks from other threads (Flower's client-manager refresher) see the nodes
        of now and move nothing."""
        if threading.get_ident() == self._server_thread:
            self._asks += 1
            if self._asks > POLL_ASKS:
                self.wait()
            self._check_stop()
        model, f = self.engine.model, self.engine.fleet
        c = np.arange(f.n)
        t = np.full(f.n, self.now_s)
        ok = model.availability.online(c, t) & (self.engine.busy_until_s[c] <= self.now_s)
        ok &= model.charged_enough(c, model.battery_at(c, t))
        return [int(i) + FIRST_NODE_ID for i in np.flatnonzero(ok)]

    def wait(self) -> None:
        """The server waits for nodes: the clock moves on by IDLE_RETRY_S, and after
        MAX_IDLE_S of waiting since the last exchange the run stops."""
        if self._waiting_since_s is None:
            self._waiting_since_s = self.now_s
        self.now_s += IDLE_RETRY_S
        if self.now_s - self._waiting_since_s >= MAX_IDLE_S:
            raise StopRun("too few nodes for a week of virtual time")

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
        self._asks, self._waiting_since_s = 0, None
        if not msgs:
            return []
        self._check_stop()
        t0 = self.now_s
        clients = self._address(msgs)
        wired = [over_the_wire(m) for m in msgs]  # each node its own copy, as over a wire
        delivered = [m for m, _ in wired]
        cut_s = t0 + min(timeout if timeout is not None else math.inf,
                         self.engine.scenario.orchestration.deadline_s)
        kinds = np.array([message_kind(m) for m in delivered], dtype=np.int64)
        work = [secagg_work(m) for m in delivered]
        profiles = self.engine.fleet.profiles
        work_s = np.array([priced_work_s(profiles[g], w)
                           for w, g in zip(work, self.engine.fleet.group[clients], strict=True)])
        down = np.array([size for _, size in wired])
        key = len(self.log.exchanges)
        up = down.copy()  # a reply's size before it exists: the message's; priced again
        planned, outcome = self._sessions(clients, t0, key, kinds, work_s, down, up, cut_s)
        done = np.flatnonzero(outcome.status == COMPLETED)
        replies, contexts = self._run_clients([delivered[i] for i in done], clients[done])
        back = [over_the_wire(r) for r in replies]  # the server gets the node's own
        replies = [r for r, _ in back]
        up[done] = [size for _, size in back]
        if len(done) and not np.array_equal(up[done], planned.upload_bytes[done]):
            planned, outcome = self._sessions(clients, t0, key, kinds, work_s, down, up, cut_s)
            still = outcome.status[done] == COMPLETED  # a longer reply can miss the cut
            replies = [r for r, ok in zip(replies, still, strict=True) if ok]
            contexts = [c for c, ok in zip(contexts, still, strict=True) if ok]
            done = done[still]
        for context, c in zip(contexts, clients[done], strict=True):
            self.contexts[int(c)] = context  # a node whose reply never came keeps none
        rnd = np.full(len(msgs), key, dtype=np.int64)
        self.engine.launch(clients)
        cuts = np.full(len(msgs), cut_s)
        self.engine.record(planned, outcome, rnd, cuts, DEADLINE, bounds=Cut(
            at_s=cuts, status=np.full(len(msgs), DEADLINE, dtype=np.int64)))
        self.log.kinds.append(kinds)
        arrivals = outcome.end_s[done]
        self.now_s = float(arrivals.max()) if len(done) == len(msgs) else cut_s
        self._log(key, msgs[0], t0, kinds, work_s, work[0].what, replies, outcome)
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

    def _sessions(self, c: I64, t0: float, key: int, kinds: I64, work_s: F64, down: F64,
                  up: F64, cut_s: float) -> tuple[Planned, Outcome]:
        """Sessions priced by what each message asks (`pricing`), moving these bytes, and
        what they had done at the cut: training and evaluation at the group's nominal
        step (with its model set-up and memory), control messages with their work alone."""
        model = self.engine.model
        ct, k = model.costs, self.engine.fleet.cost_index[c]
        share = np.select([kinds == TRAIN, kinds == EVALUATE], [1.0, EVALUATE_STEP_SHARE], 0.0)
        control = kinds == CONTROL
        costs = SessionCosts(
            step_s=ct.step_s[k] * share, busy_w=ct.busy_w[k],
            peak_memory_mb=np.where(control, 0.0, ct.peak_memory_mb[k]),
            download_bytes=down, upload_bytes=up,
            setup_s=np.where(control, 0.0, ct.setup_s[k]) + work_s,
            steps=np.where(control, 0, self.engine.fleet.local_steps[c]))
        planned = model.plan(c, np.full(len(c), t0), key, costs)
        return planned, model.account(planned, np.full(len(c), cut_s), DEADLINE)

    def _run_clients(self, msgs: list[Message], clients: I64) -> tuple[
            list[Message], list[Context]]:
        """The ClientApps (and their mods) of the sessions that complete, for real: their
        replies and the contexts as they left them."""
        jobs = [(m, self.contexts[int(c)]) for m, c in zip(msgs, clients, strict=True)]
        out = self.workers.run(jobs) if jobs else []
        return [reply for reply, _ in out], [context for _, context in out]

    def _log(self, key: int, first: Message, t0: float, kinds: I64, work_s: F64, stage: str,
             replies: list[Message], outcome: Outcome) -> None:
        row = ExchangeRow(
            round=key, start_s=t0, closed_s=self.now_s, end_s=self.now_s,
            selected=len(kinds), reported=len(replies), aggregated=bool(replies),
            energy_j=float(outcome.energy_j.sum()),
            upload_bytes=float(outcome.upload_bytes.sum()),
            download_bytes=float(outcome.download_bytes.sum()),
            message_type=first.metadata.message_type, server_round=server_round(first),
            kind="+".join(KINDS[k] for k in np.unique(kinds)), stage=stage,
            work_ms=1e3 * float(np.median(work_s)))
        self.engine.round_done(row)
        self.log.exchanges.append(row)

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
