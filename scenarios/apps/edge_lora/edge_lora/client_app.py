"""edge_lora's ClientApp: trains LoRA adapters on this client's modules and reports back."""

from __future__ import annotations

import math

import numpy as np
import torch
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from edge_lora import task

app = ClientApp()

LOCAL = "local-adapters"  # context.state key of a local-only client's own adapters


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Local AdamW steps on the received adapters (or, local-only, on this client's own).

    The train config may carry `lr`, `proximal-mu` (FedProx), `own-rank` (FlexLoRA: train at
    this node's `lora-rank`) and `local-only` (LocalOnly: keep the adapters, report the
    held-out perplexity of this local model instead of sending it)."""
    torch.set_num_threads(1)  # one core per client: the emulator runs clients side by side
    rc, nc = context.run_config, context.node_config
    setup = task.Setup.from_run_config(rc)
    config = msg.content.config_records["config"]
    pid, n = int(nc["partition-id"]), int(nc["num-partitions"])
    server_round = int(config.get("server-round", 0))
    local_only = bool(config.get("local-only", False))
    kept = context.state.array_records.get(LOCAL) if local_only else None
    start = kept if kept is not None else msg.content.array_records["arrays"]
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
        return Message(RecordDict({"arrays": adapters, "metrics": MetricRecord(metrics)}),
                       reply_to=msg)
    context.state[LOCAL] = adapters
    held_out = task.evaluate(model, task.held_out_windows(setup.seq_len, int(rc["eval-windows"])))
    metrics |= {"loss": held_out, "perplexity": math.exp(held_out)}
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


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
