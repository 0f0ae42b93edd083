"""Probe models: small transformer shapes of their own, whose real training steps
calibration measures (in-situ factors, heap retention). None of them is a model the
accuracy benchmarks check, so a profile is never fitted to the steps it is judged on.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetwin.profiles.method import Method
from edgetwin.profiles.models import ModelArch

SMALL_PROBES = (
    ModelArch("probe-llama", "llama", 448, 4, 7, 7, 64, 1216, 16000, False, "silu"),
    ModelArch("probe-gpt2", "gpt2", 320, 6, 5, 5, 64, 1280, 20000, True, "gelu_new",
              max_positions=512, qkv_bias=True, dropout=0.1),
    ModelArch("probe-gemma", "gemma3", 256, 4, 2, 1, 128, 1024, 24000, True,
              "gelu_pytorch_tanh", sliding_window=512),
)
# mid-sized: effects that grow with tensor size (allocator holes, cache misses) show
MID_PROBES = (
    ModelArch("probe-llama-640", "llama", 640, 6, 10, 5, 64, 1792, 32000, False, "silu"),
    ModelArch("probe-gemma-640", "gemma3", 640, 6, 4, 1, 160, 2048, 32000, True,
              "gelu_pytorch_tanh", sliding_window=512),
)


def probe_lora(arch: ModelArch) -> Method:
    """LoRA r8 on the attention projections a probe has."""
    return Method("lora", 8, 16.0, ("c_attn",) if arch.family == "gpt2"
                  else ("q_proj", "v_proj"))


@dataclass(frozen=True)
class Probe:
    """One probe training step: a model, a method, a batch of sequences."""

    arch: ModelArch
    method: Method
    batch: int
    seq: int

    @property
    def label(self) -> str:
        return f"{self.arch.name} {self.method.kind} {self.batch}x{self.seq}"
