"""FedAvg with SecAgg+ through Flower's workflows, as Flower's secure-aggregation
example runs it; the final arrays and how many nodes each stage heard from are written
to `out-file` (or $SECAGG_APP_OUT, for runtimes that pass no config)."""

import json
import os

import numpy as np
from flwr.app import Context
from flwr.common import Metrics, ndarrays_to_parameters
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

app = ServerApp()


class CountingSecAggPlus(SecAggPlusWorkflow):
    """SecAgg+ that notes, after each stage, how many nodes are still in."""

    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.stages: list[list[int]] = []

    def setup_stage(self, grid, context, state):  # type: ignore[no-untyped-def]
        ok = super().setup_stage(grid, context, state)
        self.stages.append([len(state.active_node_ids)])
        return ok

    def share_keys_stage(self, grid, context, state):  # type: ignore[no-untyped-def]
        return self._noted(super().share_keys_stage(grid, context, state), state)

    def collect_masked_vectors_stage(self, grid, context, state):  # type: ignore[no-untyped-def]
        return self._noted(super().collect_masked_vectors_stage(grid, context, state), state)

    def unmask_stage(self, grid, context, state):  # type: ignore[no-untyped-def]
        return self._noted(super().unmask_stage(grid, context, state), state)

    def _noted(self, ok, state):  # type: ignore[no-untyped-def]
        self.stages[-1].append(len(state.active_node_ids))
        return ok


def _mean_metrics(metrics: list[tuple[int, Metrics]]) -> Metrics:
    return {"messages-seen": max(float(m["messages-seen"]) for _, m in metrics),
            "nodes": float(len(metrics))}


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = context.run_config
    least = int(config.get("min-nodes", 4))
    width = int(config.get("width", 1000))
    strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=least,
                      min_available_clients=least,
                      initial_parameters=ndarrays_to_parameters([np.zeros(width)]),
                      on_fit_config_fn=lambda r: {"server-round": r},
                      fit_metrics_aggregation_fn=_mean_metrics)
    legacy = LegacyContext(context=context,
                           config=ServerConfig(num_rounds=int(config.get("num-server-rounds", 2))),
                           strategy=strategy)
    fit_workflow = CountingSecAggPlus(
        num_shares=int(config.get("num-shares", 4)),
        reconstruction_threshold=int(config.get("reconstruction-threshold", 3)),
        timeout=float(config.get("timeout", 600.0)), max_weight=4.0)
    DefaultWorkflow(fit_workflow=fit_workflow)(grid, legacy)
    out = str(config.get("out-file", "")) or os.environ.get("SECAGG_APP_OUT", "")
    if out:
        final = legacy.state.array_records["parameters"].to_numpy_ndarrays()
        with open(out, "w") as fh:
            json.dump({"stages": fit_workflow.stages,
                       "arrays": [a.tolist()[:3] for a in final],
                       "fit_metrics": {str(r): m for r, m in
                                       legacy.history.metrics_distributed_fit.items()}}, fh)
