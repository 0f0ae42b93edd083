"""Model catalogue: the architecture facts of the checkpoints edge fine-tuning uses.

Figures are checked against transformers' own config classes by the tests. Any
Hugging Face-style `config.json` of the GPT-2, Llama/Qwen2/Mistral or Gemma 3
families can be loaded by path with `load_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgetwin.common.errors import InputError
from edgetwin.common.files import read_json_object

Family = Literal["gpt2", "llama", "qwen2", "gemma3"]
FAMILIES: tuple[Family, ...] = ("gpt2", "llama", "qwen2", "gemma3")


@dataclass(frozen=True)
class ModelArch:
    """Shapes that decide what one training step costs.

    `family` decides module names and layer structure: `gpt2` has fused `c_attn`,
    biases everywhere, LayerNorm and learned positions; `llama`/`qwen2` have
    separate q/k/v/o and a gated MLP (qwen2 adds q/k/v biases); `gemma3` adds
    q/k norms and two more norms per layer.
    """

    name: str
    family: Family
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    act: str
    max_positions: int = 0  # learned position table size (gpt2 only)
    # the longest sequence the model accepts (gpt2's n_positions, a RoPE model's
    # max_position_embeddings); 0: unknown, not checked. Counts nothing: no parameter,
    # memory or FLOP figure depends on it.
    context_length: int = 0
    qkv_bias: bool = False
    o_bias: bool = False  # llama's attention_bias puts a bias on o_proj too
    mlp_bias: bool = False
    sliding_window: int | None = None
    dropout: float = 0.0  # attention/residual/embedding dropout while training

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


CATALOGUE: dict[str, ModelArch] = {
    m.name: m
    for m in (
        ModelArch("gpt2", "gpt2", 768, 12, 12, 12, 64, 3072, 50257, True, "gelu_new",
                  max_positions=1024, context_length=1024, qkv_bias=True, dropout=0.1),
        ModelArch("gpt2-medium", "gpt2", 1024, 24, 16, 16, 64, 4096, 50257, True, "gelu_new",
                  max_positions=1024, context_length=1024, qkv_bias=True, dropout=0.1),
        ModelArch("gemma-3-270m", "gemma3", 640, 18, 4, 1, 256, 2048, 262144, True,
                  "gelu_pytorch_tanh", context_length=32768, sliding_window=512),
        ModelArch("gemma-3-1b", "gemma3", 1152, 26, 4, 1, 256, 6912, 262144, True,
                  "gelu_pytorch_tanh", context_length=32768, sliding_window=512),
        ModelArch("qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 64, 4864, 151936, True, "silu",
                  context_length=32768, qkv_bias=True),
    )
}


def load_model(name_or_path: str) -> ModelArch:
    """A catalogue name, or the path of a Hugging Face `config.json` (or its folder)."""
    if name_or_path in CATALOGUE:
        return CATALOGUE[name_or_path]
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    if not path.exists():
        known = ", ".join(CATALOGUE)
        raise InputError("--model", name_or_path,
                         f"unknown model (catalogue: {known}; or give a config.json path)")
    return model_from_hf_config(path)


def model_from_hf_config(path: Path) -> ModelArch:
    """Read a Hugging Face `config.json`; reject families we cannot decompose."""
    where = str(path)
    raw = read_json_object(path)
    if "text_config" in raw and isinstance(raw["text_config"], dict):
        raw = {**raw["text_config"], "model_type": raw["text_config"].get("model_type", "")}
    model_type = str(raw.get("model_type", ""))
    name = str(raw.get("_name_or_path") or path.parent.name or model_type)
    if model_type == "gpt2":
        hidden = _int(raw, "n_embd", where)
        heads = _int(raw, "n_head", where)
        inner = raw.get("n_inner")
        return ModelArch(
            name=name, family="gpt2", hidden=hidden, layers=_int(raw, "n_layer", where),
            heads=heads, kv_heads=heads, head_dim=hidden // heads,
            intermediate=int(inner) if inner else 4 * hidden,
            vocab=_int(raw, "vocab_size", where),
            tied_embeddings=bool(raw.get("tie_word_embeddings", True)),
            act=str(raw.get("activation_function", "gelu_new")),
            max_positions=_int(raw, "n_positions", where),
            context_length=_int(raw, "n_positions", where), qkv_bias=True,
            dropout=float(raw.get("attn_pdrop", 0.1)),
        )
    families: dict[str, Family] = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2",
                                   "gemma3_text": "gemma3", "gemma3": "gemma3"}
    if model_type not in families:
        raise InputError(where, "model_type",
                         f"unknown family {model_type!r} (known: gpt2, {', '.join(families)})")
    family = families[model_type]
    hidden = _int(raw, "hidden_size", where)
    heads = _int(raw, "num_attention_heads", where)
    head_dim = raw.get("head_dim") or hidden // heads
    default_act = "gelu_pytorch_tanh" if family == "gemma3" else "silu"
    window = raw.get("sliding_window")
    context = raw.get("max_position_embeddings")
    return ModelArch(
        name=name, family=family, hidden=hidden, layers=_int(raw, "num_hidden_layers", where),
        heads=heads, kv_heads=int(raw.get("num_key_value_heads") or heads),
        head_dim=int(head_dim), intermediate=_int(raw, "intermediate_size", where),
        vocab=_int(raw, "vocab_size", where),
        tied_embeddings=bool(raw.get("tie_word_embeddings", family != "llama")),
        act=str(raw.get("hidden_activation") or raw.get("hidden_act") or default_act),
        qkv_bias=family == "qwen2" or bool(raw.get("attention_bias", False)),
        o_bias=family == "llama" and bool(raw.get("attention_bias", False)),
        mlp_bias=family == "llama" and bool(raw.get("mlp_bias", False)),
        sliding_window=int(window) if window else None,
        context_length=_int(raw, "max_position_embeddings", where) if context is not None
        else 0,
        dropout=float(raw.get("attention_dropout", 0.0)),
    )


def _int(raw: dict[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InputError(where, key, f"expected a positive integer, got {value!r}")
    return value
