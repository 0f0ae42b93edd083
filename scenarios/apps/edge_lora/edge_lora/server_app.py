"""edge_lora's ServerApp: runs the run config's method and measures the global model's
held-out perplexity after every round, the same way for every method. With `secagg =
true`, FedAvg runs through Flower's SecAgg+ workflow (`DefaultWorkflow` with
`SecAggPlusWorkflow`), as Flower's secure-aggregation example runs it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx

from edge_lora import task
from edgetwin.emulator.flower.strategies import FlexLoRA, LocalOnly, mean_metrics

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
    setup = task.Setup.from_run_config(rc)
    initial = task.get_adapters(task.build_model(setup, setup.lora_rank))
    if bool(rc.get("secagg", False)):
        run_secagg(grid, context, method, initial)
        return
    strategy = make_strategy(method, rc)
    strategy.start(grid=grid, initial_arrays=initial, num_rounds=int(rc["num-server-rounds"]),
                   train_config=ConfigRecord({"lr": float(rc["lr"])}),
                   evaluate_fn=held_out_evaluation(rc, method))


def run_secagg(grid: Grid, context: Context, method: str, initial: ArrayRecord) -> None:
    """FedAvg through Flower's SecAgg+ workflow: the server learns only the sum of the
    sampled nodes' masked updates, once at least `secagg-threshold` of each node's
    `secagg-shares` neighbours are still there to unmask it."""
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg as LegacyFedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    if method != "fedavg":
        raise ValueError(f"method {method!r} with secagg: SecAgg+ sums the updates, so this "
                         "app runs it with fedavg only")
    rc = context.run_config
    names = list(initial.keys())
    held_out = held_out_evaluation(rc, method)

    def evaluate(server_round: int, values: list, config: dict) -> tuple[float, dict]:
        arrays = ArrayRecord({k: Array(v) for k, v in zip(names, values, strict=True)})
        metrics = held_out(server_round, arrays) or MetricRecord({"loss": float("nan")})
        return float(metrics["loss"]), dict(metrics)

    least = int(rc["min-train-nodes"])

    def mean_fit_metrics(results: list[tuple[int, dict]]) -> dict:
        total = sum(n for n, _ in results)
        return {"train_loss": sum(n * float(m["train_loss"]) for n, m in results) / total}

    strategy = LegacyFedAvg(
        fraction_fit=float(rc["fraction-train"]), fraction_evaluate=0.0,
        min_fit_clients=least, min_available_clients=least,
        initial_parameters=ndarrays_to_parameters(initial.to_numpy_ndarrays()),
        on_fit_config_fn=lambda r: {"lr": float(rc["lr"]), "server-round": r},
        fit_metrics_aggregation_fn=mean_fit_metrics, evaluate_fn=evaluate)
    legacy = LegacyContext(context=context,
                           config=ServerConfig(num_rounds=int(rc["num-server-rounds"])),
                           strategy=strategy)
    workflow = SecAggPlusWorkflow(num_shares=_share(rc["secagg-shares"]),
                                  reconstruction_threshold=_share(rc["secagg-threshold"]),
                                  timeout=float(rc["secagg-timeout"]),
                                  max_weight=MAX_WEIGHT)
    DefaultWorkflow(fit_workflow=workflow)(grid, legacy)


MAX_WEIGHT = 10_000.0  # SecAgg+ scales each update by num-examples / this before masking


def _share(value: bool | float | int | str) -> int | float:
    """A count (an integer) or a fraction (a float below 1), as SecAgg+ takes both."""
    number = float(value)
    return int(number) if number >= 1 else number
