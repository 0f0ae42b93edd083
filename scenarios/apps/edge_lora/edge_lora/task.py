"""edge_lora's task: the model (a tiny byte-level Llama with LoRA adapters), the data (the
Python standard library's sources, split non-IID by module) and the training loop.

Everything here is built locally, so nothing is downloaded: the model comes from a config
with random (frozen) weights, the text from the corpus shipped beside this file
(`edge_lora.corpus`: the same bytes on every machine). To fine-tune something else, swap
`build_model` and `client_data` / `held_out_windows`."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import Array, ArrayRecord
from peft import (
    LoraConfig,
    PeftModel,
    get_peft_model,
    get_peft_model_state_dict,
    set_peft_model_state_dict,
)
from transformers import LlamaConfig, LlamaForCausalLM

from edge_lora import corpus
from edgetwin.emulator.flower.strategies import (
    dense_update,
    lora_factors,
    lora_pairs,
    one_blas_thread,
)

VOCAB = 256  # bytes are the tokens: no tokenizer to download
# every projection, lm_head too: through the frozen random head (weights ~ 0.02) the logits
# could not sharpen much, and the model would stall near perplexity 115
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
           "lm_head"]
# modules no client trains on: the held-out text perplexity is measured on
HELD_OUT = ("json", "csv", "textwrap", "heapq", "bisect", "fractions", "statistics", "string")
ORDER_SEED = 12  # fixes which modules each partition gets (the same on every machine)


@dataclass(frozen=True)
class Setup:
    """The run config's model, LoRA and sequence settings."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    seq_len: int
    seed: int
    lora_rank: int
    lora_alpha: float

    @classmethod
    def from_run_config(cls, rc: Mapping[str, bool | float | int | str]) -> Setup:
        """Read from a Flower run config (pyproject's [tool.flwr.app.config])."""
        return cls(hidden=int(rc["hidden-size"]), intermediate=int(rc["intermediate-size"]),
                   layers=int(rc["num-layers"]), heads=int(rc["num-heads"]),
                   seq_len=int(rc["seq-len"]), seed=int(rc["seed"]),
                   lora_rank=int(rc["lora-rank"]), lora_alpha=float(rc["lora-alpha"]))

    def scale(self, rank: int) -> float:
        """alpha / r at any rank: a rank-r adapter uses alpha * r / lora-rank, so the same."""
        return self.lora_alpha / self.lora_rank


def build_model(setup: Setup, rank: int) -> PeftModel:
    """The base model (the same random weights in every process, from `seed`) with fresh
    rank-`rank` LoRA adapters on every projection; only the adapters train."""
    torch.manual_seed(setup.seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=setup.hidden,
                         intermediate_size=setup.intermediate, num_hidden_layers=setup.layers,
                         num_attention_heads=setup.heads, num_key_value_heads=setup.heads,
                         max_position_embeddings=setup.seq_len, tie_word_embeddings=False)
    lora = LoraConfig(r=rank, lora_alpha=setup.scale(rank) * rank, target_modules=TARGETS,
                      lora_dropout=0.0)
    return get_peft_model(LlamaForCausalLM(config), lora)


def get_adapters(model: PeftModel) -> ArrayRecord:
    """The LoRA arrays (PEFT's state-dict names): what travels each round. Not the frozen
    lm_head, which PEFT would add as an "embedding layer" with LoRA on it."""
    return ArrayRecord(get_peft_model_state_dict(model, save_embedding_layers=False))


def set_adapters(model: PeftModel, arrays: ArrayRecord) -> None:
    """Load LoRA arrays of the model's own rank."""
    set_peft_model_state_dict(model, arrays.to_torch_state_dict())


def rank_of(arrays: ArrayRecord) -> int:
    """The LoRA rank of the arrays (rows of the first A)."""
    a_key = lora_pairs(arrays.keys())[0][0]
    return int(arrays[a_key].shape[0])


def at_rank(arrays: ArrayRecord, rank: int, setup: Setup) -> ArrayRecord:
    """The same adapters at another rank: exact when growing, the best approximation (SVD)
    when shrinking. FlexLoRA's first message to a client is at the app's rank."""
    if rank_of(arrays) == rank:
        return arrays
    out = dict(arrays.items())
    with one_blas_thread():
        for a_key, b_key in lora_pairs(arrays.keys()):
            a = arrays[a_key].numpy()
            dense = dense_update(arrays[b_key].numpy(), a, setup.scale(a.shape[0]))
            b_new, a_new = lora_factors(dense, rank, setup.scale(rank))
            out[a_key], out[b_key] = Array(a_new.astype(a.dtype)), Array(b_new.astype(a.dtype))
    return ArrayRecord(out)


def module_text(name: str) -> bytes:
    """A module's source (its files in order, cut at the corpus's cap)."""
    return corpus.modules()[name]


@functools.lru_cache(maxsize=1)
def training_modules() -> tuple[str, ...]:
    """The modules clients train on, in a fixed shuffled order."""
    names = [m for m in corpus.modules() if m not in HELD_OUT]
    order = np.random.default_rng(ORDER_SEED).permutation(len(names))
    return tuple(names[i] for i in order)


@functools.lru_cache(maxsize=16)
def client_data(partition_id: int, num_partitions: int, per_client: int,
                seq_len: int) -> np.ndarray:
    """Partition `partition_id`'s bytes: `per_client` whole modules or, where clients
    outnumber modules, this client's slice of each (clients sharing a module split it)."""
    modules = training_modules()
    sharers = math.ceil(num_partitions * per_client / len(modules))
    parts = []
    for slot in range(partition_id * per_client, (partition_id + 1) * per_client):
        text = module_text(modules[slot % len(modules)])
        j = slot // len(modules)
        part = text[len(text) * j // sharers: len(text) * (j + 1) // sharers]
        parts.append(part if len(part) > seq_len else text)
    data = np.frombuffer(b"\n".join(parts), dtype=np.uint8)
    return np.resize(data, max(data.size, seq_len + 1))  # a tiny module is repeated


def windows(data: np.ndarray, seq_len: int, count: int) -> torch.Tensor:
    """`count` windows of `seq_len` tokens evenly spread over `data` (no randomness)."""
    starts = np.linspace(0, data.size - seq_len, count).astype(np.int64)
    return torch.from_numpy(np.stack([data[s:s + seq_len] for s in starts]).astype(np.int64))


@functools.lru_cache(maxsize=4)
def held_out_windows(seq_len: int, count: int) -> torch.Tensor:
    """The fixed held-out set: windows over the HELD_OUT modules' text."""
    names = [m for m in HELD_OUT if m in corpus.modules()]
    data = np.frombuffer(b"\n".join(module_text(m) for m in names), dtype=np.uint8)
    return windows(data, seq_len, count)


def message_seed(seed: int, partition_id: int, server_round: int) -> int:
    """One seed per (run seed, client, round): a client's result is the same in any process."""
    return int(np.random.SeedSequence([seed, partition_id, server_round]).generate_state(1)[0])


def train(model: PeftModel, data: np.ndarray, *, steps: int, batch_size: int, seq_len: int,
          lr: float, proximal_mu: float, rng: np.random.Generator) -> float:
    """AdamW on the adapters for `steps` random batches; with `proximal_mu` > 0 FedProx's
    mu/2 ||w - w_global||^2 over the trainable arrays. Returns the mean training loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    anchor = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        starts = rng.integers(0, data.size - seq_len + 1, size=batch_size)
        x = torch.from_numpy(np.stack([data[s:s + seq_len] for s in starts]).astype(np.int64))
        loss = model(input_ids=x, labels=x).loss
        losses.append(loss.item())
        if proximal_mu > 0:
            loss = loss + proximal_mu / 2 * sum(
                ((p - a) ** 2).sum() for p, a in zip(params, anchor, strict=True))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(np.mean(losses))


@torch.no_grad()
def evaluate(model: PeftModel, x: torch.Tensor, batch_size: int = 16) -> float:
    """Mean next-byte cross-entropy over windows `x` (perplexity is its exp)."""
    model.eval()
    total = sum(float(model(input_ids=b, labels=b).loss) * len(b) for b in x.split(batch_size))
    return total / len(x)
