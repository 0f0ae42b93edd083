"""Real models built from configs with random weights, by transformers and PEFT.

The same architecture facts the workload model reads become a transformers
config, so a count or a measurement of the real module can be set beside the
prediction. Nothing is downloaded: weights are random (or on the meta device).
"""

from __future__ import annotations

from typing import Any

from edgetwin.profiles.method import ALL_LINEAR, Method
from edgetwin.profiles.models import ModelArch

_TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def hf_config(arch: ModelArch, attn_implementation: str = "eager") -> Any:
    """A transformers config with exactly `arch`'s shapes."""
    import transformers as tf

    cfg: Any
    if arch.family == "gpt2":
        cfg = tf.GPT2Config(
            n_embd=arch.hidden, n_layer=arch.layers, n_head=arch.heads,
            n_inner=arch.intermediate, vocab_size=arch.vocab, n_positions=arch.max_positions,
            activation_function=arch.act, tie_word_embeddings=arch.tied_embeddings,
            attn_pdrop=arch.dropout, resid_pdrop=arch.dropout, embd_pdrop=arch.dropout,
            bos_token_id=min(50256, arch.vocab - 1), eos_token_id=min(50256, arch.vocab - 1))
    else:
        common: dict[str, Any] = dict(
            hidden_size=arch.hidden, intermediate_size=arch.intermediate,
            num_hidden_layers=arch.layers, num_attention_heads=arch.heads,
            num_key_value_heads=arch.kv_heads, head_dim=arch.head_dim, vocab_size=arch.vocab,
            tie_word_embeddings=arch.tied_embeddings, attention_dropout=arch.dropout)
        if arch.family == "gemma3":
            cfg = tf.Gemma3TextConfig(hidden_activation=arch.act,
                                      sliding_window=arch.sliding_window or 4096, **common)
        elif arch.family == "qwen2":
            cfg = tf.Qwen2Config(hidden_act=arch.act, **common)
        else:
            cfg = tf.LlamaConfig(hidden_act=arch.act, attention_bias=arch.qkv_bias,
                                 mlp_bias=arch.mlp_bias, **common)
    cfg._attn_implementation = attn_implementation
    return cfg


def build_model(arch: ModelArch, method: Method, *, device: str = "cpu", dtype: str = "fp32",
                attn_implementation: str = "eager", seed: int = 0) -> Any:
    """A causal LM of `arch` with `method` applied (LoRA through PEFT), in training mode."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    cfg = hf_config(arch, attn_implementation)
    auto: Any = tf.AutoModelForCausalLM
    with torch.device(device):
        model = auto.from_config(cfg, dtype=getattr(torch, _TORCH_DTYPES[dtype]))
    if method.kind == "lora":
        import peft

        targets: str | list[str] = ALL_LINEAR if ALL_LINEAR in method.lora_targets \
            else list(method.lora_targets)
        alpha: Any = method.lora_alpha
        lora = peft.LoraConfig(r=method.lora_rank, lora_alpha=alpha,
                               target_modules=targets, lora_dropout=method.lora_dropout,
                               bias="none", task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, lora)
    model.train()
    return model


def count_params(model: Any) -> tuple[int, int]:
    """(total, trainable) unique parameters of a torch module."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
