"""Federated averaging of the numbers (the config's defaults where a runtime gives none),
written to `out-file` (or $NUMBERS_APP_OUT, for runtimes that pass no config) with the
round metrics."""

import json
import os

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = context.run_config
    rounds = int(config.get("num-server-rounds", 3))
    width = int(config.get("width", 1000))
    least = int(config.get("min-nodes", 4))  # wait for this many (Flower's nodes start apart)
    strategy = FedAvg(fraction_train=float(config.get("fraction-train", 1.0)),
                      fraction_evaluate=0.0, min_train_nodes=least, min_available_nodes=least)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord([np.zeros(width)]),
                            num_rounds=rounds, train_config=ConfigRecord({"lr": 0.1}))
    out = str(config.get("out-file", "")) or os.environ.get("NUMBERS_APP_OUT", "")
    if out:
        with open(out, "w") as fh:
            json.dump({"arrays": [a.tolist()[:3] for a in result.arrays.to_numpy_ndarrays()],
                       "train": {str(r): dict(m) for r, m in
                                 result.train_metrics_clientapp.items()}}, fh)
