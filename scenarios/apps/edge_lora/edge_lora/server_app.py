"""edge_lora's ServerApp: runs the run config's method and measures the global model's
held-out perplexity after every round, the same way for every method."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx

from edge_lora import task
from emulator.flower.strategies import FlexLoRA, LocalOnly, mean_metrics

app = ServerApp()

RunConfig = Mapping[str, bool | float | int | str]
METHODS = ("fedavg", "fedprox", "flexlora", "local_only")


def make_strategy(method: str, rc: RunConfig) -> FedAvg:
    """The strategy `method` names, sampling as the run config says."""
    sampling = {"fraction_train": float(rc["fraction-train"]),
                "fraction_evaluate": float(rc["fraction-evaluate"]),
                "min_train_nodes": int(rc["min-train-nodes"]),
                "min_available_nodes": int(rc["min-train-nodes"])}
    if method == "fedavg":
        return FedAvg(**sampling)
    if method == "fedprox":
        return FedProx(proximal_mu=float(rc["proximal-mu"]), **sampling)
    if method == "flexlora":
        return FlexLoRA(lora_rank=int(rc["lora-rank"]), lora_alpha=float(rc["lora-alpha"]),
                        **sampling)
    if method == "local_only":
        return LocalOnly(train_metrics_aggr_fn=local_quality, **sampling)
    if method == "splitlora":
        raise ValueError("method 'splitlora': edgetwin models SplitLoRA's cost only (system "
                         "level); this app has no SplitLoRA training, so no quality for it")
    raise ValueError(f"method {method!r}: choose one of {', '.join(METHODS)}")


def local_quality(replies: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """local_only's quality: the clients' mean held-out `loss` and its exp as `perplexity`
    (the geometric mean of their perplexities: one diverged client, and a local model on a
    few modules can diverge on the held-out ones, would swamp an arithmetic mean)."""
    metrics = mean_metrics(replies, weighted_by_key)
    metrics["perplexity"] = math.exp(float(metrics["loss"]))
    return metrics


def held_out_evaluation(rc: RunConfig, method: str,
                        ) -> Callable[[int, ArrayRecord], MetricRecord | None]:
    """Centralised evaluation: `loss` and `perplexity` of the global adapters on the
    held-out modules. local_only has no global model after round 0: its clients report
    their own models' held-out perplexity instead (the train metrics)."""
    setup = task.Setup.from_run_config(rc)
    x = task.held_out_windows(setup.seq_len, int(rc["eval-windows"]))

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if method == "local_only" and server_round > 0:
            return None
        model = task.build_model(setup, task.rank_of(arrays))
        task.set_adapters(model, arrays)
        loss = task.evaluate(model, x)
        return MetricRecord({"loss": loss, "perplexity": math.exp(loss)})

    return evaluate


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Start the method's strategy from fresh adapters at the app's LoRA rank."""
    # one thread for the evaluation: beside the clients' workers, more threads only spin
    torch.set_num_threads(1)
    rc = context.run_config
    method = str(rc["method"])
    strategy = make_strategy(method, rc)
    setup = task.Setup.from_run_config(rc)
    initial = task.get_adapters(task.build_model(setup, setup.lora_rank))
    strategy.start(grid=grid, initial_arrays=initial, num_rounds=int(rc["num-server-rounds"]),
                   train_config=ConfigRecord({"lr": float(rc["lr"])}),
                   evaluate_fn=held_out_evaluation(rc, method))
