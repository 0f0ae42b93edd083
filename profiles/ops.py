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


def matmul(name: str, phase: Phase, m: int, k: int, n: int, dtype: str, dtype_bytes: int,
           count: int = 1, layer: int = -1, saved_bytes: int = 0) -> Op:
    """An [m x k] @ [k x n] product: 2mkn FLOPs, reads both operands, writes the result."""
    return Op(name, "matmul", phase, (m, k, n), dtype, 2.0 * m * k * n,
              float((m * k + k * n + m * n) * dtype_bytes), count, layer, saved_bytes)


def elementwise(name: str, kind: OpKind, phase: Phase, elements: int, dtype: str,
                dtype_bytes: int, flops_per_element: float, passes: float, count: int = 1,
                layer: int = -1, saved_bytes: int = 0) -> Op:
    """A bandwidth-bound op over `elements` values that moves `passes` tensors' worth."""
    return Op(name, kind, phase, (elements,), dtype, flops_per_element * elements,
              passes * elements * dtype_bytes, count, layer, saved_bytes)
