"""Each node returns the global arrays plus a hundredth of its partition id, behind
Flower's `secaggplus_mod` and a mod of the app's own that counts, in the node's
context, every message the node was sent (its count comes back as a fit metric)."""

import numpy as np
from flwr.app import Context, Message
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable

SEEN = "secagg-app-seen"


class Numbers(NumPyClient):
    def __init__(self, pid: int, seen: int) -> None:
        self.pid, self.seen = pid, seen

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        # secaggplus_mod rounds stochastically with numpy's global generator: seeded per
        # node and round, the same update is masked the same way wherever it runs
        np.random.seed(1000 * self.pid + int(config.get("server-round", 0)))
        updated = [a + self.pid / 100 for a in parameters]
        return updated, 1, {"partition-id": self.pid, "messages-seen": self.seen}


def client_fn(context: Context):  # type: ignore[no-untyped-def]
    seen = int(context.state.config_records[SEEN]["count"])
    return Numbers(int(context.node_config["partition-id"]), seen).to_client()


def counting_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """The app's own mod: one more message seen by this node, kept in its context."""
    from flwr.app import ConfigRecord

    record = context.state.config_records.get(SEEN) or ConfigRecord({"count": 0})
    record["count"] = int(record["count"]) + 1
    context.state.config_records[SEEN] = record
    return call_next(msg, context)


app = ClientApp(client_fn=client_fn, mods=[counting_mod, secaggplus_mod])
