"""The building blocks of a training step, op by op: what one projection (and its LoRA
adapter), norm, dropout, attention, activation or embedding adds to the forward and
backward passes, and what it keeps for backward (`edgetwin.profiles.workload` assembles a step
from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgetwin.profiles.method import Method
from edgetwin.profiles.models import ModelArch
from edgetwin.profiles.modules import Linear, layer_prefix
from edgetwin.profiles.ops import (
    ACT_IMPL,
    FRESH_PAGES_MIN_BYTES,
    KERNELS,
    VARIANTS,
    Op,
    OpKind,
    Phase,
    elementwise,
    fresh_pages,
    matmul,
)
from edgetwin.profiles.training_setup import DTYPE_BYTES, TrainingSetup


@dataclass
class SavedActs:
    """Saved-for-backward bookkeeping of one micro-batch."""

    saved: dict[str, int] = field(default_factory=dict)
    per_layer: dict[int, int] = field(default_factory=dict)
    layer_inputs: int = 0


class BlockOps:
    """The ops of a step's building blocks (a projection with its adapter, a norm,
    dropout, attention, an activation, the embedding), recorded as autograd runs them:
    forward ops in order, backward ops where a gradient is needed, the tensors each keeps
    for backward counted once."""

    def __init__(self, model: ModelArch, method: Method, setup: TrainingSetup) -> None:
        self.m, self.method, self.s = model, method, setup
        self.T = setup.tokens
        self.b = setup.dtype_bytes
        self.dt = setup.dtype
        # products (matmul, attention) run in the autocast precision where there is one
        self.cdt = setup.autocast or setup.dtype
        self.cb = DTYPE_BYTES[self.cdt]
        self.full = method.kind == "full"
        self.n = setup.grad_accum
        self.fwd: list[Op] = []
        self.bwd: list[Op] = []  # in forward order; reversed at the end
        self.acts = SavedActs()
        self.last_layer = model.layers if method.split_layer is None else method.split_layer
        self.trainable: list[tuple[str, tuple[int, ...]]] = []

    # --- recording -------------------------------------------------------------------
    def _save(self, layer: int, tensors: dict[str, int]) -> int:
        new = 0
        for key, nbytes in tensors.items():
            if key not in self.acts.saved:
                self.acts.saved[key] = nbytes
                new += nbytes
        self.acts.per_layer[layer] = self.acts.per_layer.get(layer, 0) + new
        return new

    def _op(self, op: Op, backward: bool = False) -> None:
        (self.bwd if backward else self.fwd).append(op)

    def _ew(self, name: str, kind: OpKind, phase: Phase, elements: int, flops_per: float,
            passes: float, layer: int, saved: int = 0, dtype_bytes: int | None = None,
            kernels: int = 1, impl: str = "") -> Op:
        return elementwise(name, kind, phase, elements, self.dt,
                           dtype_bytes or self.b, flops_per, passes, self.n, layer, saved,
                           kernels, impl)

    def _mm(self, name: str, phase: Phase, m: int, k: int, n: int, layer: int,
            saved: int = 0) -> Op:
        return matmul(name, phase, m, k, n, self.cdt, self.cb, self.n, layer, saved)

    def _cast(self, name: str, phase: Phase, elements: int, layer: int) -> None:
        """Autocast's cast of a tensor between fp32 and the half precision (reads 4 bytes
        an element, writes 2, or back)."""
        self._op(self._ew(name, "elementwise", phase, elements, 0.0, 3.0, layer,
                          dtype_bytes=2, impl="cast"), backward=phase == "backward")

    # --- building blocks --------------------------------------------------------------
    def linear(self, lin: Linear, x_key: str, x_rg: bool) -> bool:
        """A projection with an optional LoRA adapter; returns whether its output needs grad."""
        T, i = self.T, lin.layer
        b = self.cb  # a product saves its operands as it computed them
        lora = self.method.is_lora_target(lin)
        out_rg = x_rg or self.full or lora
        if self.s.autocast:  # the input and the weight cast for the product, every forward
            self._cast(f"{lin.name}.cast_input", "forward", T * lin.in_features, i)
            self._cast(f"{lin.name}.cast_weight", "forward", lin.params, i)
            if out_rg:  # the cast weight stays for the input's gradient
                self._save(i, {f"{lin.name}.weight.{self.cdt}": lin.params * b})
                if x_rg:
                    self._cast(f"{lin.name}.cast_grad_input", "backward", T * lin.in_features,
                               i)
                if self.full:
                    self._cast(f"{lin.name}.cast_grad_weight", "backward", lin.params, i)
        saved = self._save(i, {x_key: T * lin.in_features * b}) if self.full else 0
        self._op(self._mm(lin.name, "forward", T, lin.in_features, lin.out_features, i, saved))
        if lora:
            r = self.method.lora_rank
            a, bb = f"{lin.name}.lora_A", f"{lin.name}.lora_B"
            keep = {x_key: T * lin.in_features * b, f"{a}.out": T * r * b}
            if self.method.lora_dropout > 0:
                keep[f"{a}.dropout"] = 2 * T * lin.in_features * b
            saved = self._save(i, keep)
            self._op(self._mm(a, "forward", T, lin.in_features, r, i))
            self._op(self._mm(bb, "forward", T, r, lin.out_features, i))
            self._op(self._ew(f"{lin.name}.lora_add", "elementwise", "forward",
                              T * lin.out_features, 2, 3, i, saved, impl="add", kernels=2))
            self.trainable += [(f"{a}.weight", (r, lin.in_features)),
                               (f"{bb}.weight", (lin.out_features, r))]
        if not out_rg:
            return False
        if x_rg:
            self._op(self._mm(f"{lin.name}.grad_input", "backward", T, lin.out_features,
                              lin.in_features, i), backward=True)
        if self.full:
            self._op(self._mm(f"{lin.name}.grad_weight", "backward", lin.out_features, T,
                              lin.in_features, i), backward=True)
        if lora:
            r = self.method.lora_rank
            a, bb = f"{lin.name}.lora_A", f"{lin.name}.lora_B"
            self._op(self._mm(f"{bb}.grad_weight", "backward", lin.out_features, T, r, i),
                     backward=True)
            self._op(self._mm(f"{bb}.grad_input", "backward", T, lin.out_features, r, i),
                     backward=True)
            self._op(self._mm(f"{a}.grad_weight", "backward", r, T, lin.in_features, i),
                     backward=True)
            if x_rg:
                self._op(self._mm(f"{a}.grad_input", "backward", T, r, lin.in_features, i),
                         backward=True)
        return True

    def norm(self, name: str, layer: int, x_key: str, elements: int, rows: int,
             x_rg: bool) -> bool:
        """LayerNorm (gpt2) or RMSNorm computed in fp32 (llama, qwen2, gemma3)."""
        out_rg = x_rg or self.full
        saved = 0
        if out_rg:
            fp32 = self.m.family != "gpt2"
            keep = {x_key: elements * (4 if fp32 else self.b), f"{x_key}.stats": 2 * rows * 4}
            if self.full and fp32:
                keep[f"{name}.normed"] = elements * 4
            saved = self._save(layer, keep)
        impl = "layernorm" if self.m.family == "gpt2" else "rmsnorm"
        self._op(self._ew(name, "norm", "forward", elements, *VARIANTS["norm.forward"], layer,
                          saved, kernels=KERNELS[f"{impl}.forward"], impl=impl))
        if out_rg:
            self._op(self._ew(f"{name}.backward", "norm", "backward", elements,
                              *VARIANTS["norm.backward"], layer,
                              kernels=KERNELS[f"{impl}.backward"], impl=impl), backward=True)
        return out_rg

    def dropout(self, name: str, layer: int, elements: int, x_rg: bool) -> None:
        """Training-mode dropout on CPU keeps a scaled noise tensor of the input's dtype."""
        if self.m.dropout <= 0:
            return
        saved = self._save(layer, {f"{name}.noise": elements * self.b}) if x_rg else 0
        self._op(self._ew(name, "elementwise", "forward", elements,
                          *VARIANTS["dropout.forward"], layer, saved, impl="dropout"))
        if x_rg:
            self._op(self._ew(f"{name}.backward", "elementwise", "backward", elements,
                              *VARIANTS["dropout.backward"], layer, impl="dropout"),
                     backward=True)

    def attention(self, i: int, q_key: str, k_key: str, v_key: str, rg: bool) -> None:
        m, s = self.m, self.s
        B, S, h, d = s.batch, s.seq, m.heads, m.head_dim
        T, b = self.T, self.cb
        probs = B * h * S * S
        fwd_flops = 4.0 * B * h * S * S * d
        expand = m.kv_heads != m.heads
        keep: dict[str, int] = {q_key: T * m.q_dim * b}
        keep[f"{k_key}.rep" if expand else k_key] = T * (m.q_dim if expand else m.kv_dim) * b
        keep[f"{v_key}.rep" if expand else v_key] = T * (m.q_dim if expand else m.kv_dim) * b
        if s.memory_efficient_attention:
            keep[f"L{i}.attn_out"] = T * m.q_dim * b
            keep[f"L{i}.lse"] = B * h * S * 4
            moved, bwd_factor = 4.0 * T * m.q_dim * b, 2.5  # fused kernel recomputes scores
        else:
            # llama-likes, and autocast, take the softmax in fp32
            softmax_bytes = 4 if m.family != "gpt2" or self.s.autocast else b
            keep[f"L{i}.probs"] = probs * softmax_bytes
            if m.dropout > 0:
                keep[f"L{i}.probs.noise"] = probs * b
                keep[f"L{i}.probs.dropped"] = probs * b
            moved, bwd_factor = 4.0 * T * m.q_dim * b + 3.0 * probs * b, 2.0
        saved = self._save(i, keep) if rg else 0
        shape = (B, h, S, S, d)
        impl = "attention_fused" if s.memory_efficient_attention else "attention_eager"
        self._op(Op(f"{layer_prefix(m, i)}.attention", "attention", "forward", shape, self.cdt,
                    fwd_flops, moved, self.n, i, saved, KERNELS[f"{impl}.forward"]))
        if rg:
            self._op(Op(f"{layer_prefix(m, i)}.attention.backward", "attention", "backward",
                        shape, self.cdt, bwd_factor * fwd_flops, 2.0 * moved, self.n, i,
                        kernels=KERNELS[f"{impl}.backward"]), backward=True)

    def activation(self, name: str, layer: int, x_key: str, elements: int, rg: bool) -> None:
        """gelu_new is a Python formula in transformers (7 kernels, 4 saved tensors);
        gelu_pytorch_tanh, gelu and silu are fused (one kernel, keeps its input)."""
        composite = self.m.act == "gelu_new"
        if rg:
            keep = {x_key: elements * self.b}
            if composite:
                keep.update({f"{name}.tanh": elements * self.b, f"{name}.half_x": elements * self.b,
                             f"{name}.one_plus": elements * self.b})
            saved = self._save(layer, keep)
        else:
            saved = 0
        variant = "activation_composite" if composite else "activation"
        impl = ACT_IMPL.get(self.m.act, "silu")
        self._op(self._ew(name, "activation", "forward", elements,
                          *VARIANTS[f"{variant}.forward"], layer, saved,
                          kernels=KERNELS[f"{variant}.forward"], impl=impl))
        if rg:
            self._op(self._ew(f"{name}.backward", "activation", "backward", elements,
                              *VARIANTS[f"{variant}.backward"], layer,
                              kernels=KERNELS[f"{variant}.backward"], impl=impl), backward=True)

    # --- the model --------------------------------------------------------------------
    def embedding(self) -> bool:
        T, H = self.T, self.m.hidden
        saved = self._save(-1, {"input_ids": T * 8}) if self.full else 0
        self._op(self._ew("embedding", "embedding", "forward", T * H,
                          *VARIANTS["embedding.forward"], -1, saved))
        if self.m.family == "gpt2":
            self._op(self._ew("embedding.positions", "elementwise", "forward", T * H, 1, 3, -1))
        if self.full:  # a dense gradient of the whole table, rows added at the used ids
            tables = self.m.vocab + self.m.max_positions
            self._op(self._ew("embedding.backward", "embedding", "backward", tables * H,
                              *VARIANTS["embedding.backward"], -1), backward=True)
            # autograd sums a tied table's two gradients (head, lookup) into a new tensor
            fresh_tables = ["embedding.backward"]
            if self.m.tied_embeddings:
                self._op(self._ew("embedding.tied_grad_sum", "elementwise", "backward",
                                  self.m.vocab * H, *VARIANTS["add.forward"], -1, impl="add"),
                         backward=True)
                fresh_tables.append("embedding.tied_grad_sum")
            table_bytes = self.m.vocab * H * self.b
            if table_bytes >= FRESH_PAGES_MIN_BYTES:
                for name in fresh_tables:
                    self._op(fresh_pages(f"{name}.pages", "backward", table_bytes,
                                         self.dt, self.n), backward=True)
        if self.m.family == "gpt2":
            self.dropout("embedding.dropout", -1, T * H, self.full)
        return self.full
