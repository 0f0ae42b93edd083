"""Flower strategies for the methods Flower does not ship: FlexLoRA (each client at its own
LoRA rank) and LocalOnly (no aggregation), usable by any Flower app, the emulator's or not."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

__all__ = ["FlexLoRA", "LocalOnly", "dense_update", "lora_factors", "lora_pairs",
           "mean_metrics", "one_blas_thread"]

Matrix = npt.NDArray[np.float64]
LORA_A, LORA_B = ".lora_A.", ".lora_B."


def lora_pairs(keys: Iterable[str]) -> list[tuple[str, str]]:
    """The (A, B) key pairs of the LoRA adapters among PEFT state-dict keys, in key order."""
    return [(k, k.replace(LORA_A, LORA_B)) for k in keys if LORA_A in k]


def dense_update(b: npt.ArrayLike, a: npt.ArrayLike, scale: float) -> Matrix:
    """The weight update a LoRA adapter applies: B @ A * alpha/r."""
    return np.asarray(b, dtype=np.float64) @ np.asarray(a, dtype=np.float64) * scale


def lora_factors(dense: Matrix, rank: int, scale: float) -> tuple[Matrix, Matrix]:
    """B, A of rank `rank` with B @ A * scale the best rank-`rank` approximation of `dense`.

    The singular values go to B and A keeps orthonormal rows, so that a zero update (the
    first round) still gives A != 0 and B = 0, LoRA's own start, from which both train;
    ranks beyond the matrix's own are zero padding."""
    return _factors(_svd(dense), rank, scale)


Svd = tuple[Matrix, Matrix, Matrix]


def _svd(dense: Matrix) -> Svd:
    u, s, vt = np.linalg.svd(dense, full_matrices=False)
    return u, s, vt


def one_blas_thread() -> AbstractContextManager[Any]:
    """Limit BLAS to one thread where threadpoolctl is installed: beside busy client workers,
    OpenBLAS's threads spin and a round's SVDs took 20-50 s instead of 0.3 s."""
    try:
        limits = importlib.import_module("threadpoolctl").threadpool_limits
    except ImportError:
        return nullcontext()
    return cast(AbstractContextManager[Any], limits(limits=1, user_api="blas"))


def _factors(svd: Svd, rank: int, scale: float) -> tuple[Matrix, Matrix]:
    u, s, vt = svd
    k = min(rank, s.size)
    b = np.zeros((u.shape[0], rank))
    a = np.zeros((rank, vt.shape[1]))
    b[:, :k] = u[:, :k] * (s[:k] / scale)
    a[:k] = vt[:k]
    return b, a


def mean_metrics(records: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """The plain mean of each scalar metric over the replies (every client counts once)."""
    rows = [next(iter(r.metric_records.values())) for r in records]
    return MetricRecord({k: float(np.mean([_scalar(row, k) for row in rows]))
                         for k, v in rows[0].items()
                         if k != weighted_by_key and not isinstance(v, list)})


def _scalar(metrics: MetricRecord, key: str) -> float:
    value = metrics[key]
    if isinstance(value, list):
        raise ValueError(f"metric {key!r} must be a number, got a list")
    return float(value)


def _arrays_of(content: RecordDict) -> ArrayRecord:
    return next(iter(content.array_records.values()))


def _metrics_of(content: RecordDict) -> MetricRecord:
    return next(iter(content.metric_records.values()))


class FlexLoRA(FedAvg):
    """FlexLoRA (Bai et al., 2024): clients train LoRA at their own ranks; the server averages
    the dense updates B @ A * alpha/r weighted by examples and sends each client the SVD
    truncation to its rank.

    A client's rank is the `rank_key` metric of its last train reply (before that,
    `lora_rank`); the strategy sets `own-rank` in the train config to tell clients to train
    at their own rank. With `fixed_alpha` False (edgetwin's convention) a rank-r client uses
    alpha * r / lora_rank, so every adapter has the scale alpha / lora_rank; with True every
    client uses alpha (PEFT's default) and the scale alpha / r. The global arrays are the
    exact average, factored at the full rank of each matrix (zero padded to the largest).
    Keys that are not LoRA pairs are averaged as FedAvg does."""

    def __init__(self, *, lora_rank: int = 8, lora_alpha: float = 16.0,
                 fixed_alpha: bool = False, rank_key: str = "lora-rank",
                 **fedavg_kwargs: Any) -> None:
        super().__init__(**fedavg_kwargs)
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.fixed_alpha = fixed_alpha
        self.rank_key = rank_key
        self.node_ranks: dict[int, int] = {}  # node id -> rank of its last train reply

    def scale(self, rank: int) -> float:
        """alpha / r of a rank-`rank` adapter under this strategy's alpha convention."""
        return self.lora_alpha / (rank if self.fixed_alpha else self.lora_rank)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """FedAvg's sampling, then each node's arrays: the global adapters at its own rank."""
        config["own-rank"] = True
        sampled = list(super().configure_train(server_round, arrays, config, grid))
        if not sampled:
            return []
        with one_blas_thread():
            svds = {a: _svd(self._dense(arrays, a, b)) for a, b in lora_pairs(arrays.keys())}
        by_rank: dict[int, ArrayRecord] = {}
        out = []
        for msg in sampled:
            node = msg.metadata.dst_node_id
            rank = self.node_ranks.get(node, self.lora_rank)
            if rank not in by_rank:
                by_rank[rank] = self._at_rank(arrays, svds, rank)
            content = RecordDict({self.arrayrecord_key: by_rank[rank],
                                  self.configrecord_key: config})
            out.append(Message(content=content, message_type=MessageType.TRAIN,
                               dst_node_id=node))
        return out

    def aggregate_train(self, server_round: int, replies: Iterable[Message],
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The example-weighted mean of the clients' dense updates, factored at full rank."""
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        contents = [m.content for m in valid]
        for m in valid:
            rank = _scalar(_metrics_of(m.content), self.rank_key)
            self.node_ranks[m.metadata.src_node_id] = int(rank)
        weights = np.array([_scalar(_metrics_of(c), self.weighted_by_key) for c in contents])
        weights /= weights.sum()
        records = [_arrays_of(c) for c in contents]
        first = records[0]
        svds: dict[str, Svd] = {}
        with one_blas_thread():
            for a_key, b_key in lora_pairs(first.keys()):
                dense = np.sum([w * self._dense(r, a_key, b_key)
                                for w, r in zip(weights, records, strict=True)], axis=0)
                svds[a_key] = _svd(dense)
        full = max((s.size for _, s, _ in svds.values()), default=0)
        plain = {k: np.sum([w * r[k].numpy() for w, r in zip(weights, records, strict=True)],
                           axis=0) for k in first if k not in _paired(svds)}
        merged = self._at_rank(ArrayRecord({k: Array(np.asarray(v)) for k, v in plain.items()}),
                               svds, full, template=first)
        return merged, self.train_metrics_aggr_fn(contents, self.weighted_by_key)

    def _dense(self, arrays: ArrayRecord, a_key: str, b_key: str) -> Matrix:
        a = arrays[a_key].numpy()
        return dense_update(arrays[b_key].numpy(), a, self.scale(a.shape[0]))

    def _at_rank(self, others: ArrayRecord, svds: Mapping[str, Svd], rank: int,
                 template: ArrayRecord | None = None) -> ArrayRecord:
        """The adapters of `svds` as rank-`rank` factors, with the non-LoRA arrays of
        `others`, in the key order (and dtype) of `template` (default: `others`)."""
        template = others if template is None else template
        out: dict[str, Array] = {}
        for key in template:
            if key in svds:
                dtype = template[key].numpy().dtype
                b, a = _factors(svds[key], rank, self.scale(rank))
                out[key] = Array(a.astype(dtype))
                out[key.replace(LORA_A, LORA_B)] = Array(b.astype(dtype))
        for key in template:
            if key not in out:
                out[key] = others[key]
        return ArrayRecord({k: out[k] for k in template})


def _paired(svds: Mapping[str, Svd]) -> set[str]:
    return {k for a in svds for k in (a, a.replace(LORA_A, LORA_B))}


class LocalOnly(FedAvg):
    """No aggregation: each client trains its own adapters (kept in its `context.state`,
    starting from the initial global arrays) and the global arrays never change.

    The strategy sets `local-only` in the train config; its train metrics are the plain mean
    of what clients report (for quality, their local models' held-out perplexity)."""

    def __init__(self, *, train_metrics_aggr_fn: (
            Callable[[list[RecordDict], str], MetricRecord] | None) = None,
                 **fedavg_kwargs: Any) -> None:
        super().__init__(train_metrics_aggr_fn=train_metrics_aggr_fn or mean_metrics,
                         **fedavg_kwargs)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """FedAvg's messages, marked local-only."""
        config["local-only"] = True
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message],
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """No arrays (the global model stays the initial one); the clients' mean metrics."""
        valid, _ = self._check_and_log_replies(replies, is_train=False)
        if not valid:
            return None, None
        return None, self.train_metrics_aggr_fn([m.content for m in valid],
                                                self.weighted_by_key)
