"""The ops a training step is made of: the unit that device profiles put a cost on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OpKind = Literal["matmul", "attention", "norm", "activation", "elementwise", "embedding",
                 "cross_entropy", "optimizer", "storage", "communication"]
OP_KINDS: tuple[OpKind, ...] = ("matmul", "attention", "norm", "activation", "elementwise",
                                "embedding", "cross_entropy", "optimizer", "storage",
                                "communication")
# Kinds whose FLOPs are tensor contractions: what torch's FlopCounterMode and MFU count.
CONTRACTION_KINDS: frozenset[str] = frozenset({"matmul", "attention"})
# Kinds a device's processor runs; storage and communication are priced by other facts.
COMPUTE_KINDS: tuple[OpKind, ...] = OP_KINDS[:8]

Phase = Literal["forward", "backward", "recompute", "optimizer", "io"]

# FLOPs per element and tensors' worth of bytes moved, per bandwidth-bound op variant.
# The workload model prices its ops from this table and the calibration op suite
# measures the same variants, so a fitted profile and a workload speak of the same bytes.
VARIANTS: dict[str, tuple[float, float]] = {
    "norm.forward": (7.0, 2.0), "norm.backward": (10.0, 3.0),
    "activation.forward": (8.0, 2.0), "activation.backward": (12.0, 3.0),
    # gelu_new is a Python formula in transformers: seven kernels forward
    "activation_composite.forward": (8.0, 14.0), "activation_composite.backward": (12.0, 15.0),
    "add.forward": (1.0, 3.0), "mul.forward": (1.0, 3.0), "mul.backward": (2.0, 4.0),
    "dropout.forward": (3.0, 3.0), "dropout.backward": (1.0, 3.0),
    "embedding.forward": (0.0, 2.0), "embedding.backward": (1.0, 2.0),
    "cross_entropy.forward": (5.0, 3.0), "cross_entropy.backward": (3.0, 3.0),
}
# Kernel launches each op takes in PyTorch eager: a device's per-launch overhead is
# paid this many times (a Python RMSNorm is six kernels, a fused LayerNorm one).
KERNELS: dict[str, int] = {
    "layernorm.forward": 1, "layernorm.backward": 1,
    "rmsnorm.forward": 6, "rmsnorm.backward": 12,
    "activation.forward": 1, "activation.backward": 1,
    "activation_composite.forward": 7, "activation_composite.backward": 12,
    "attention_eager.forward": 5, "attention_eager.backward": 8,
    "attention_fused.forward": 1, "attention_fused.backward": 1,
    "rope.forward": 10, "rope.backward": 10,
    "cross_entropy.forward": 4, "cross_entropy.backward": 3,
    "adamw.tensor": 10, "sgd.tensor": 2,
}
# Allocations at least this large are fresh pages from the OS (glibc's largest mmap
# threshold): the first touch of each page faults, a cost of its own on CPUs.
FRESH_PAGES_MIN_BYTES = 32 * 1024 * 1024
ADAMW_FLOPS_PER_PARAM, ADAMW_PASSES = 12.0, 7.0  # read p, g, m, v; write p, m, v
SGD_FLOPS_PER_PARAM, SGD_PASSES = 2.0, 3.0


@dataclass(frozen=True, slots=True)
class Op:
    """One op, repeated `count` times per optimizer step.

    `shape` is kind-specific: matmul (m, k, n) for an [m x k] @ [k x n] product;
    attention (batch, heads, seq_q, seq_k, head_dim); others the elements touched.
    `saved_bytes` is what the op keeps alive for its backward (forward ops only).
    """

    name: str
    kind: OpKind
    phase: Phase
    shape: tuple[int, ...]
    dtype: str
    flops: float
    bytes: float
    count: int = 1
    layer: int = -1
    saved_bytes: int = 0
    kernels: int = 1  # launches in PyTorch eager; per-launch overhead is paid per kernel
    impl: str = ""  # which implementation (rmsnorm, silu, adamw, ...), for per-impl costs


def matmul(name: str, phase: Phase, m: int, k: int, n: int, dtype: str, dtype_bytes: int,
           count: int = 1, layer: int = -1, saved_bytes: int = 0) -> Op:
    """An [m x k] @ [k x n] product: 2mkn FLOPs, reads both operands, writes the result."""
    return Op(name, "matmul", phase, (m, k, n), dtype, 2.0 * m * k * n,
              float((m * k + k * n + m * n) * dtype_bytes), count, layer, saved_bytes)


def elementwise(name: str, kind: OpKind, phase: Phase, elements: int, dtype: str,
                dtype_bytes: int, flops_per_element: float, passes: float, count: int = 1,
                layer: int = -1, saved_bytes: int = 0, kernels: int = 1, impl: str = "") -> Op:
    """A bandwidth-bound op over `elements` values that moves `passes` tensors' worth."""
    return Op(name, kind, phase, (elements,), dtype, flops_per_element * elements,
              passes * elements * dtype_bytes, count, layer, saved_bytes, kernels, impl)


def fresh_pages(name: str, phase: Phase, nbytes: int, dtype: str, count: int) -> Op:
    """The page faults of a large fresh allocation: priced by `elementwise.fresh_pages`."""
    return Op(name, "elementwise", phase, (nbytes,), dtype, 0.0, float(nbytes), count, -1, 0,
              0, "fresh_pages")


# transformers' activation names -> the implementation the op suite times
ACT_IMPL = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu_tanh",
            "silu": "silu", "swish": "silu"}
