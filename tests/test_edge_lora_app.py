"""The shipped Flower app (scenarios/apps/edge_lora) and the FlexLoRA / LocalOnly strategies:
real ClientApp messages, determinism, non-IID partitions, FlexLoRA's aggregation math, and
whole runs of the ServerApp over a tiny in-process grid."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("flwr")

from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.common.config import get_fused_config_from_dir
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.object_ref import load_app
from flwr.supercore.task_identity import TaskIdentity

from edgetwin.emulator.flower.strategies import FlexLoRA, dense_update, lora_factors

APP = Path(__file__).resolve().parents[1] / "scenarios" / "apps" / "edge_lora"
# the run config as `flwr run` gives it: pyproject's [tool.flwr.app.config], flattened
RUN_CONFIG: dict[str, Any] = dict(get_fused_config_from_dir(APP, {}))
# a smaller run than the app's defaults, so whole runs take seconds
FAST = {"local-steps": 2, "seq-len": 32, "batch-size": 2, "eval-windows": 4,
        "hidden-size": 32, "intermediate-size": 64, "num-heads": 2}


@pytest.fixture(scope="module")
def apps() -> tuple[ServerApp, ClientApp]:
    server = load_app("edge_lora.server_app:app", ValueError, APP)
    client = load_app("edge_lora.client_app:app", ValueError, APP)
    return server, client


@pytest.fixture(scope="module")
def task(apps: Any) -> Any:
    import edge_lora.task  # importable once load_app put the app's folder on sys.path
    return edge_lora.task


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    # instruction messages take their run and sender from the running task (a ServerApp
    # process sets it); stand in for it here
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


def context(pid: int, n: int = 1000, rank: int | None = None, **overrides: Any) -> Context:
    node_config: dict[str, Any] = {"partition-id": pid, "num-partitions": n}
    if rank is not None:
        node_config["lora-rank"] = rank
    return Context(run_id=1, node_id=pid + 1, node_config=node_config, state=RecordDict(),
                   run_config={**RUN_CONFIG, **overrides})


def initial_arrays(rank: int = 8, **overrides: Any) -> ArrayRecord:
    from edge_lora import task
    setup = task.Setup.from_run_config({**RUN_CONFIG, **overrides})
    return task.get_adapters(task.build_model(setup, rank))


def train_message(arrays: ArrayRecord, node: int = 1, server_round: int = 1,
                  **config: Any) -> Message:
    content = RecordDict({"arrays": arrays, "config": ConfigRecord(
        {"lr": 0.01, "server-round": server_round, **config})})
    return Message(content, dst_node_id=node, message_type=MessageType.TRAIN)


def test_train_message_replies_with_adapters_and_metrics(apps: Any) -> None:
    _, client = apps
    start = initial_arrays()
    reply = client(train_message(start), context(0))
    arrays = reply.content.array_records["arrays"]
    metrics = reply.content.metric_records["metrics"]
    assert list(arrays.keys()) == list(start.keys())
    assert all(arrays[k].shape == start[k].shape for k in start)
    assert not np.array_equal(arrays[next(iter(arrays))].numpy(),
                              start[next(iter(start))].numpy())  # it trained
    assert metrics["lora-rank"] == 8
    assert int(metrics["num-examples"]) > 0
    assert 0 < float(metrics["train_loss"]) < 7


def test_same_message_gives_the_same_arrays(apps: Any) -> None:
    _, client = apps
    start = initial_arrays(**FAST)
    a, b = (client(train_message(start), context(3, **FAST)) for _ in range(2))
    for key in start:
        np.testing.assert_array_equal(a.content["arrays"][key].numpy(),
                                      b.content["arrays"][key].numpy())


def test_partitions_are_non_iid_and_cached(task: Any) -> None:
    modules = task.training_modules()
    assert not set(task.HELD_OUT) & set(modules)
    first, second = task.client_data(0, 10, 3, 64), task.client_data(1, 10, 3, 64)
    assert first.tobytes()[:2000] != second.tobytes()[:2000]
    # with more clients than modules, clients sharing a module take different slices
    n = len(modules)
    a, b = task.client_data(0, 1000, 1, 64), task.client_data(n, 1000, 1, 64)
    assert a.tobytes() != b.tobytes()
    assert task.client_data(0, 10, 3, 64) is first  # cached: read once per process


def test_the_corpus_is_the_shipped_one_and_a_changed_one_is_refused(
        task: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The text comes from the corpus file the app ships, whose hash is checked: the same
    bytes on every machine, and a damaged file is a clear error, not other perplexities."""
    from edge_lora import corpus

    texts = corpus.modules()
    assert len(texts) == 200 and set(task.HELD_OUT) <= set(texts)
    assert all(0 < len(t) <= corpus.MAX_MODULE_BYTES for t in texts.values())
    damaged = tmp_path / "corpus.tar.xz"
    damaged.write_bytes(corpus.CORPUS.read_bytes()[:-1] + b"\0")
    monkeypatch.setattr(corpus, "CORPUS", damaged)
    corpus.modules.cache_clear()
    try:
        with pytest.raises(ValueError, match="not the corpus this app ships"):
            corpus.modules()
    finally:
        monkeypatch.undo()
        corpus.modules.cache_clear()


def test_own_rank_client_trains_at_its_rank(apps: Any) -> None:
    _, client = apps
    reply = client(train_message(initial_arrays(**FAST), **{"own-rank": True}),
                   context(1, rank=4, **FAST))
    arrays = reply.content.array_records["arrays"]
    assert reply.content.metric_records["metrics"]["lora-rank"] == 4
    a_key = next(k for k in arrays if ".lora_A." in k)
    assert arrays[a_key].shape[0] == 4


class LoopGrid(Grid):
    """Runs each message's ClientApp in this process at once: a Grid for tests."""

    def __init__(self, client: ClientApp | None, contexts: dict[int, Context]) -> None:
        self.client, self.contexts = client, contexts

    def set_run(self, run: Any) -> None:
        raise NotImplementedError

    @property
    def run(self) -> Any:
        raise NotImplementedError

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterator[Message]:
        return iter([self.client(m, self.contexts[m.metadata.dst_node_id]) for m in messages])


def test_flexlora_averages_dense_updates_and_truncates_by_svd() -> None:
    rng = np.random.default_rng(0)
    alpha, base = 16.0, 8
    clients = {1: (2, 10.0), 2: (4, 30.0)}  # node -> (rank, examples)
    replies, dense = [], np.zeros((6, 5))
    for node, (rank, examples) in clients.items():
        b, a = rng.normal(size=(6, rank)), rng.normal(size=(rank, 5))
        dense += examples / 40 * dense_update(b, a, alpha / base)
        arrays = ArrayRecord({"m.lora_A.weight": Array(a), "m.lora_B.weight": Array(b)})
        metrics = MetricRecord({"num-examples": examples, "lora-rank": rank})
        msg = train_message(arrays, node=node)
        replies.append(Message(RecordDict({"arrays": arrays, "metrics": metrics}),
                               reply_to=msg))
    strategy = FlexLoRA(lora_rank=base, lora_alpha=alpha, min_available_nodes=2,
                        min_train_nodes=2)
    grid = LoopGrid(None, {node: context(node - 1) for node in clients})
    first = strategy.configure_train(1, replies[1].content["arrays"], ConfigRecord(), grid)
    assert {m.content["arrays"]["m.lora_A.weight"].shape[0] for m in first} == {base}

    merged, _ = strategy.aggregate_train(1, replies)
    assert merged is not None
    np.testing.assert_allclose(dense_update(merged["m.lora_B.weight"].numpy(),
                                            merged["m.lora_A.weight"].numpy(), alpha / base),
                               dense, atol=1e-10)  # the global is the exact average
    assert strategy.node_ranks == {1: 2, 2: 4}  # learned from the replies' `lora-rank`

    u, s, vt = np.linalg.svd(dense)
    for msg in strategy.configure_train(2, merged, ConfigRecord(), grid):
        rank = clients[msg.metadata.dst_node_id][0]
        sent = msg.content["arrays"]
        b, a = sent["m.lora_B.weight"].numpy(), sent["m.lora_A.weight"].numpy()
        assert a.shape == (rank, 5) and b.shape == (6, rank)
        assert msg.content["config"]["own-rank"] is True
        best = (u[:, :rank] * s[:rank]) @ vt[:rank]  # Eckart-Young: the best rank-r fit
        np.testing.assert_allclose(dense_update(b, a, alpha / base), best, atol=1e-6)
    b0, a0 = lora_factors(np.zeros((6, 5)), 3, 2.0)  # a zero update still trains: A != 0
    assert not b0.any() and np.abs(a0).sum() > 0


@pytest.mark.parametrize("method", ["fedavg", "fedprox", "flexlora", "local_only"])
def test_server_app_runs_each_method(apps: Any, method: str,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flwr")
    server, client = apps
    overrides = {**FAST, "method": method, "num-server-rounds": 2, "fraction-train": 1.0}
    contexts = {pid + 1: context(pid, 3, rank=2 + 2 * pid, **overrides) for pid in range(3)}
    state = random.getstate()
    random.seed(0)  # Flower's sample_nodes draws from the global random
    try:
        server(LoopGrid(client, contexts), context(0, **overrides))
    finally:
        random.setstate(state)
    assert caplog.text.count("Received 3 results and 0 failures") == 2
    if method == "local_only":  # each client kept its own adapters, and reported on them
        assert all("local-adapters" in c.state for c in contexts.values())
        assert "'perplexity'" in caplog.text.split("[ROUND 2/2]")[1]
    else:  # the global model's held-out perplexity, after each round
        assert caplog.text.count("MetricRecord: {'loss'") == 2


@pytest.mark.slow
@pytest.mark.ray
def test_runs_under_flowers_own_simulation(apps: Any, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("ray", reason="Flower's simulation engine needs ray (flwr[simulation])")
    from flwr.simulation import run_simulation
    caplog.set_level(logging.INFO, logger="flwr")
    server, client = apps
    run_config = {**RUN_CONFIG, **FAST, "num-server-rounds": 2, "fraction-train": 1.0}

    def configured(ctx: Context) -> Context:
        # run_simulation (the Python API) passes no run config: give the app's, as `flwr run`
        return Context(run_id=ctx.run_id, node_id=ctx.node_id, node_config=ctx.node_config,
                       state=ctx.state, run_config=run_config)

    with_config_server, with_config_client = ServerApp(), ClientApp()

    @with_config_server.main()
    def _main(grid: Grid, ctx: Context) -> None:
        server(grid, configured(ctx))

    @with_config_client.train()
    def _train(msg: Message, ctx: Context) -> Message:
        return client(msg, configured(ctx))

    run_simulation(server_app=with_config_server, client_app=with_config_client,
                   num_supernodes=3, backend_config={"client_resources": {"num_cpus": 1}})
    assert caplog.text.count("Received 3 results and 0 failures") == 2
