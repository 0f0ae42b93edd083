"""Each node returns the global arrays plus its partition id and 100 x the round, with
one example: an aggregate names its contributors, in whole numbers that any summation
order adds up exactly."""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    pid = int(context.node_config["partition-id"])
    server_round = int(msg.content["config"]["server-round"])
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    updated = [a + pid + 100 * server_round for a in arrays]
    metrics = MetricRecord({"num-examples": 1, "partition-id": pid, "pid-squared": pid * pid})
    return Message(RecordDict({"arrays": ArrayRecord(updated), "metrics": metrics}),
                   reply_to=msg)
