"""edge_lora's ClientApp: trains LoRA adapters on this client's modules and reports back.

With `secagg = true` the server runs FedAvg through Flower's SecAgg+ workflow: its train
messages come in Flower's legacy form (`fitins.*`), and Flower's `secaggplus_mod` masks
the reply; everything else is the same training."""

from __future__ import annotations

import math

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

from edge_lora import task

app = ClientApp()

LOCAL = "local-adapters"  # context.state key of a local-only client's own adapters
SECAGG_CONFIGS = "secaggplus_configs"  # what marks a message of a SecAgg+ round
LEGACY_ARRAYS, LEGACY_CONFIG = "fitins.parameters", "fitins.config"  # Flower's legacy FitIns


def secagg_when_asked(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's SecAgg+ client side for the messages of a SecAgg+ round; others pass."""
    if SECAGG_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, context, call_next)
    return call_next(msg, context)


@app.train(mods=[secagg_when_asked])
def train(msg: Message, context: Context) -> Message:
    """Local AdamW steps on the received adapters (or, local-only, on this client's own).

    The train config may carry `lr`, `proximal-mu` (FedProx), `own-rank` (FlexLoRA: train at
    this node's `lora-rank`) and `local-only` (LocalOnly: keep the adapters, report the
    held-out perplexity of this local model instead of sending it)."""
    if LEGACY_ARRAYS in msg.content.array_records:
        return _train_legacy(msg, context)
    config = msg.content.config_records["config"]
    adapters, metrics = _train(msg.content.array_records["arrays"], config, context)
    if adapters is None:
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
    return Message(RecordDict({"arrays": adapters, "metrics": MetricRecord(metrics)}),
                   reply_to=msg)


def _train(received: ArrayRecord, config: ConfigRecord, context: Context,
           ) -> tuple[ArrayRecord | None, dict[str, int | float]]:
    """The trained adapters (None for a local-only client, which keeps them) and the
    metrics to report."""
    torch.set_num_threads(1)  # one core per client: the emulator runs clients side by side
    rc, nc = context.run_config, context.node_config
    setup = task.Setup.from_run_config(rc)
    pid, n = int(nc["partition-id"]), int(nc["num-partitions"])
    server_round = int(config.get("server-round", 0))
    local_only = bool(config.get("local-only", False))
    kept = context.state.array_records.get(LOCAL) if local_only else None
    start = kept if kept is not None else received
    own = bool(config.get("own-rank", False))
    rank = int(nc.get("lora-rank", setup.lora_rank)) if own else task.rank_of(start)

    model = task.build_model(setup, rank)
    task.set_adapters(model, task.at_rank(start, rank, setup))
    seed = task.message_seed(setup.seed, pid, server_round)
    torch.manual_seed(seed)
    data = task.client_data(pid, n, int(rc["modules-per-client"]), setup.seq_len)
    loss = task.train(model, data, steps=int(rc["local-steps"]),
                      batch_size=int(rc["batch-size"]), seq_len=setup.seq_len,
                      lr=float(config.get("lr", rc["lr"])),
                      proximal_mu=float(config.get("proximal-mu", 0.0)),
                      rng=np.random.default_rng(seed))
    metrics: dict[str, int | float] = {"train_loss": loss, "lora-rank": rank,
                                       "num-examples": max(1, data.size // setup.seq_len)}
    adapters = task.get_adapters(model)
    if not local_only:
        return adapters, metrics
    context.state[LOCAL] = adapters
    held_out = task.evaluate(model, task.held_out_windows(setup.seq_len, int(rc["eval-windows"])))
    return None, metrics | {"loss": held_out, "perplexity": math.exp(held_out)}


def _train_legacy(msg: Message, context: Context) -> Message:
    """A SecAgg+ round's training: Flower's legacy FitIns (the adapters as a list, in the
    model's state-dict order) in, FitRes out, for `secaggplus_mod` to mask."""
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
    from flwr.compat.common.recorddict_compat import fitres_to_recorddict

    setup = task.Setup.from_run_config(context.run_config)
    names = list(task.get_adapters(task.build_model(setup, setup.lora_rank)).keys())
    values = msg.content.array_records[LEGACY_ARRAYS].to_numpy_ndarrays()
    received = ArrayRecord({k: Array(np.asarray(v)) for k, v in zip(names, values, strict=True)})
    config = msg.content.config_records[LEGACY_CONFIG]
    adapters, metrics = _train(received, config, context)
    # secaggplus_mod rounds stochastically with numpy's global generator: seeded per
    # message, the same update is masked the same way wherever the ClientApp runs
    np.random.seed(task.message_seed(setup.seed, int(context.node_config["partition-id"]),
                                     int(config.get("server-round", 0))))
    assert adapters is not None, "SecAgg+ rounds are FedAvg's: no local-only clients"
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(adapters.to_numpy_ndarrays()),
                    int(metrics["num-examples"]), dict(metrics))
    return Message(fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The received adapters' loss on windows of this client's own data."""
    torch.set_num_threads(1)
    rc, nc = context.run_config, context.node_config
    setup = task.Setup.from_run_config(rc)
    arrays = msg.content.array_records["arrays"]
    model = task.build_model(setup, task.rank_of(arrays))
    task.set_adapters(model, arrays)
    data = task.client_data(int(nc["partition-id"]), int(nc["num-partitions"]),
                            int(rc["modules-per-client"]), setup.seq_len)
    x = task.windows(data, setup.seq_len, int(rc["eval-windows"]))
    loss = task.evaluate(model, x)
    metrics = {"eval_loss": loss, "eval_perplexity": math.exp(loss), "num-examples": len(x)}
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
