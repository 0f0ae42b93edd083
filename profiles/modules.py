"""The parameterised modules of a model, named as transformers names them.

LoRA targets are matched against these names exactly as PEFT matches them, and
total parameter counts are the sum of these tensors, so both agree with a model
built by transformers from the same config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from edgetwin.profiles.models import ModelArch


@dataclass(frozen=True)
class Linear:
    """One dense projection `y = x W^T (+ b)`; `role` says where it sits in a layer."""

    name: str
    role: str  # q, k, v, o, qkv, attn_out, gate, up, down, fc, mlp_out, lm_head
    layer: int  # -1 outside the decoder stack
    in_features: int
    out_features: int
    bias: bool

    @property
    def params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)


@dataclass(frozen=True)
class Tensor:
    """A parameter that is not a projection: embeddings and norm scales."""

    name: str
    layer: int
    shape: tuple[int, ...]

    @property
    def params(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def layer_prefix(model: ModelArch, layer: int) -> str:
    return f"transformer.h.{layer}" if model.family == "gpt2" else f"model.layers.{layer}"


@cache  # a model's modules are asked for per layer and per group: listed once
def linears(model: ModelArch) -> tuple[Linear, ...]:
    """Every projection, in forward order, the output head last."""
    out: list[Linear] = []
    h, q, kv, inter = model.hidden, model.q_dim, model.kv_dim, model.intermediate
    for i in range(model.layers):
        p = layer_prefix(model, i)
        if model.family == "gpt2":
            out += [
                Linear(f"{p}.attn.c_attn", "qkv", i, h, 3 * h, True),
                Linear(f"{p}.attn.c_proj", "attn_out", i, h, h, True),
                Linear(f"{p}.mlp.c_fc", "fc", i, h, inter, True),
                Linear(f"{p}.mlp.c_proj", "mlp_out", i, inter, h, True),
            ]
        else:
            b, mb = model.qkv_bias, model.mlp_bias
            out += [
                Linear(f"{p}.self_attn.q_proj", "q", i, h, q, b),
                Linear(f"{p}.self_attn.k_proj", "k", i, h, kv, b),
                Linear(f"{p}.self_attn.v_proj", "v", i, h, kv, b),
                Linear(f"{p}.self_attn.o_proj", "o", i, q, h, model.o_bias),
                Linear(f"{p}.mlp.gate_proj", "gate", i, h, inter, mb),
                Linear(f"{p}.mlp.up_proj", "up", i, h, inter, mb),
                Linear(f"{p}.mlp.down_proj", "down", i, inter, h, mb),
            ]
    out.append(Linear("lm_head", "lm_head", -1, h, model.vocab, False))
    return tuple(out)


@cache
def layer_linears(model: ModelArch) -> Mapping[int, Mapping[str, Linear]]:
    """The projections of each layer by role (-1: outside the decoder stack)."""
    out: dict[int, dict[str, Linear]] = {}
    for lin in linears(model):
        out.setdefault(lin.layer, {})[lin.role] = lin
    # read-only, as the cached lists are tuples: every caller shares them
    return MappingProxyType({layer: MappingProxyType(roles) for layer, roles in out.items()})


@cache
def other_tensors(model: ModelArch) -> tuple[Tensor, ...]:
    """Embeddings and norm scales/biases (LayerNorm has both, RMSNorm a scale only)."""
    h = model.hidden
    if model.family == "gpt2":
        out = [Tensor("transformer.wte", -1, (model.vocab, h)),
               Tensor("transformer.wpe", -1, (model.max_positions, h))]
        for i in range(model.layers):
            p = layer_prefix(model, i)
            out += [Tensor(f"{p}.ln_1", i, (2, h)), Tensor(f"{p}.ln_2", i, (2, h))]
        out.append(Tensor("transformer.ln_f", -1, (2, h)))
        return tuple(out)
    out = [Tensor("model.embed_tokens", -1, (model.vocab, h))]
    norms = ["input_layernorm", "post_attention_layernorm"]
    if model.family == "gemma3":
        norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
    for i in range(model.layers):
        p = layer_prefix(model, i)
        out += [Tensor(f"{p}.{n}", i, (h,)) for n in norms]
        if model.family == "gemma3":
            out += [Tensor(f"{p}.self_attn.q_norm", i, (model.head_dim,)),
                    Tensor(f"{p}.self_attn.k_norm", i, (model.head_dim,))]
    out.append(Tensor("model.norm", -1, (h,)))
    return tuple(out)


@cache
def total_params(model: ModelArch) -> int:
    """Unique parameters: a tied output head shares the embedding and adds nothing."""
    heads = [lin for lin in linears(model) if lin.role != "lm_head" or not model.tied_embeddings]
    return sum(lin.params for lin in heads) + sum(t.params for t in other_tensors(model))
