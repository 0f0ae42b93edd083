"""One optimizer step of a model, a method and a training setup, as a list of ops.

The step is what PyTorch's autograd does in eager mode: each forward op records
what it keeps for backward (deduplicated by tensor), each backward op runs only
where a gradient is needed (a frozen projection whose input needs no gradient has
no backward at all). Counts that can be exact are exact: parameters, trainable
parameters, contraction FLOPs (as torch's FlopCounterMode counts them) and payload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgetwin.profiles.memory import MemoryBreakdown, peak_memory
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import ModelArch
from edgetwin.profiles.modules import (
    Linear,
    layer_linears,
    layer_prefix,
    linears,
    other_tensors,
    total_params,
)
from edgetwin.profiles.ops import (
    ADAMW_FLOPS_PER_PARAM,
    ADAMW_PASSES,
    CONTRACTION_KINDS,
    FRESH_PAGES_MIN_BYTES,
    KERNELS,
    SGD_FLOPS_PER_PARAM,
    SGD_PASSES,
    VARIANTS,
    Op,
    elementwise,
    fresh_pages,
)
from edgetwin.profiles.payload import Payload, round_payload
from edgetwin.profiles.step_blocks import BlockOps
from edgetwin.profiles.training_setup import ENCODING_BITS, TrainingSetup


@dataclass(frozen=True)
class Workload:
    """What one optimizer step costs, independent of the device that runs it."""

    model: ModelArch
    method: Method
    setup: TrainingSetup
    ops: tuple[Op, ...]
    total_params: int
    trainable_params: int
    trainable_tensors: tuple[tuple[str, tuple[int, ...]], ...]
    memory: MemoryBreakdown
    payload: Payload
    step_upload_bytes: int = 0  # SplitLoRA: activations sent every micro-batch
    step_download_bytes: int = 0  # SplitLoRA: their gradients coming back

    @property
    def step_flops(self) -> float:
        """Forward + backward (+ recompute) tensor-contraction FLOPs of one optimizer step."""
        return sum(op.flops * op.count for op in self.ops
                   if op.kind in CONTRACTION_KINDS and op.phase != "optimizer")

    @property
    def elementwise_flops(self) -> float:
        """FLOPs of everything else (norms, activations, loss, optimizer update)."""
        return sum(op.flops * op.count for op in self.ops if op.kind not in CONTRACTION_KINDS
                   and op.kind not in ("storage", "communication"))


def build_workload(model: ModelArch, method: Method, setup: TrainingSetup) -> Workload:
    """Decompose one optimizer step; inputs are validated first."""
    method.validate(model)
    setup.validate()
    return _StepBuilder(model, method, setup).build()


class _StepBuilder(BlockOps):
    """A whole step: the decoder layers, the head and loss (or SplitLoRA's boundary),
    activation checkpointing's recompute, the optimizer update and sharding's reads."""

    def decoder_layer(self, i: int, x_rg: bool) -> bool:
        m, T, b = self.m, self.T, self.b
        H, inter = m.hidden, m.intermediate
        lins = layer_linears(m)[i]
        p = layer_prefix(m, i)
        x = f"L{i}.x"
        if self.s.activation_checkpointing:
            self.acts.layer_inputs += T * H * b
        if m.family == "gpt2":
            n1 = self.norm(f"{p}.ln_1", i, x, T * H, T, x_rg)
            qkv_rg = self.linear(lins["qkv"], f"L{i}.n1", n1)
            self.attention(i, f"L{i}.qkv", f"L{i}.qkv", f"L{i}.qkv", qkv_rg)
            # q, k and v are views of one c_attn output: keep it once, at its full width
            if qkv_rg:
                self.acts.saved[f"L{i}.qkv"] = T * 3 * H * b
            attn_rg = self.linear(lins["attn_out"], f"L{i}.attn_out", qkv_rg)
            self.dropout(f"{p}.attn.resid_dropout", i, T * H, attn_rg)
            h_rg = x_rg or attn_rg
            self._op(self._ew(f"{p}.residual_1", "elementwise", "forward", T * H,
                              *VARIANTS["add.forward"], i, impl="add"))
            n2 = self.norm(f"{p}.ln_2", i, f"L{i}.h", T * H, T, h_rg)
            fc_rg = self.linear(lins["fc"], f"L{i}.n2", n2)
            self.activation(f"{p}.mlp.act", i, f"L{i}.fc", T * inter, fc_rg)
            out_rg = self.linear(lins["mlp_out"], f"L{i}.act", fc_rg)
            self.dropout(f"{p}.mlp.dropout", i, T * H, out_rg)
            self._op(self._ew(f"{p}.residual_2", "elementwise", "forward", T * H,
                              *VARIANTS["add.forward"], i, impl="add"))
            return h_rg or out_rg
        n1 = self.norm(f"{p}.input_layernorm", i, x, T * H, T, x_rg)
        q_rg = self.linear(lins["q"], f"L{i}.n1", n1)
        k_rg = self.linear(lins["k"], f"L{i}.n1", n1)
        v_rg = self.linear(lins["v"], f"L{i}.n1", n1)
        if m.family == "gemma3":
            q_rg = self.norm(f"{p}.self_attn.q_norm", i, f"L{i}.q", T * m.q_dim,
                             T * m.heads, q_rg)
            k_rg = self.norm(f"{p}.self_attn.k_norm", i, f"L{i}.k", T * m.kv_dim,
                             T * m.kv_heads, k_rg)
        self._op(self._ew(f"{p}.rope", "elementwise", "forward", T * (m.q_dim + m.kv_dim), 3,
                          5, i, kernels=KERNELS["rope.forward"]))
        if q_rg or k_rg:
            self._op(self._ew(f"{p}.rope.backward", "elementwise", "backward",
                              T * (m.q_dim + m.kv_dim), 3, 5, i,
                              kernels=KERNELS["rope.backward"]), backward=True)
        attn_rg = q_rg or k_rg or v_rg
        self.attention(i, f"L{i}.q_rot", f"L{i}.k_rot", f"L{i}.v", attn_rg)
        o_rg = self.linear(lins["o"], f"L{i}.attn_out", attn_rg)
        if m.family == "gemma3":
            o_rg = self.norm(f"{p}.post_attention_layernorm", i, f"L{i}.o", T * H, T, o_rg)
        h_rg = x_rg or o_rg
        self._op(self._ew(f"{p}.residual_1", "elementwise", "forward", T * H,
                              *VARIANTS["add.forward"], i, impl="add"))
        mlp_norm = "pre_feedforward_layernorm" if m.family == "gemma3" else \
            "post_attention_layernorm"
        n2 = self.norm(f"{p}.{mlp_norm}", i, f"L{i}.h", T * H, T, h_rg)
        g_rg = self.linear(lins["gate"], f"L{i}.n2", n2)
        u_rg = self.linear(lins["up"], f"L{i}.n2", n2)
        self.activation(f"{p}.mlp.act", i, f"L{i}.gate", T * inter, g_rg)
        prod_rg = g_rg or u_rg
        saved = self._save(i, {f"L{i}.act": T * inter * b, f"L{i}.up": T * inter * b}) \
            if prod_rg else 0
        self._op(self._ew(f"{p}.mlp.gate_mul", "elementwise", "forward", T * inter,
                          *VARIANTS["mul.forward"], i, saved, impl="mul"))
        if prod_rg:
            self._op(self._ew(f"{p}.mlp.gate_mul.backward", "elementwise", "backward",
                              T * inter, *VARIANTS["mul.backward"], i, impl="mul"),
                     backward=True)
        d_rg = self.linear(lins["down"], f"L{i}.prod", prod_rg)
        if m.family == "gemma3":
            d_rg = self.norm(f"{p}.post_feedforward_layernorm", i, f"L{i}.d", T * H, T, d_rg)
        self._op(self._ew(f"{p}.residual_2", "elementwise", "forward", T * H,
                              *VARIANTS["add.forward"], i, impl="add"))
        return h_rg or d_rg

    def head_and_loss(self, x_rg: bool) -> tuple[int, int]:
        """Final norm, output head and cross-entropy; returns (loss workspace, head grad)."""
        m, T = self.m, self.T
        final = "transformer.ln_f" if m.family == "gpt2" else "model.norm"
        n_rg = self.norm(final, -1, "final.x", T * m.hidden, T, x_rg)
        head = layer_linears(m)[-1]["lm_head"]
        self.linear(head, "final.n", n_rg)
        logits = T * m.vocab
        if logits * 4 >= FRESH_PAGES_MIN_BYTES:  # logits and log-probs; their two gradients
            self._op(fresh_pages("logits.pages", "forward", 2 * logits * 4, self.dt, self.n))
            self._op(fresh_pages("logits.grad.pages", "backward", 2 * logits * 4, self.dt,
                                 self.n), backward=True)
        saved = self._save(-1, {"log_probs": logits * 4})
        self._op(self._ew("cross_entropy", "cross_entropy", "forward", logits,
                          *VARIANTS["cross_entropy.forward"], -1, saved, dtype_bytes=4,
                          kernels=KERNELS["cross_entropy.forward"]))
        self._op(self._ew("cross_entropy.backward", "cross_entropy", "backward", logits,
                          *VARIANTS["cross_entropy.backward"], -1, dtype_bytes=4,
                          kernels=KERNELS["cross_entropy.backward"]), backward=True)
        head_grad = m.vocab * m.hidden * self.b if self.full else 0
        # backward of the loss holds d(log_probs) and d(logits) beside the saved log_probs
        return 2 * logits * 4, head_grad

    def split_boundary(self, x_rg: bool) -> tuple[int, int]:
        """SplitLoRA: send the split layer's input up each micro-batch, and get its
        gradient back where the client has something to train (`x_rg`)."""
        nbytes = self.T * self.m.hidden * self.b
        self._op(Op("split.upload_activations", "communication", "io", (self.T, self.m.hidden),
                    self.dt, 0.0, float(nbytes), self.n))
        if not x_rg:  # the client's part is frozen (LoRA at layer 0): nothing comes back
            return nbytes * self.n, 0
        self._op(Op("split.download_gradients", "communication", "io",
                    (self.T, self.m.hidden), self.dt, 0.0, float(nbytes), self.n),
                 backward=True)
        return nbytes * self.n, nbytes * self.n

    def build(self) -> Workload:
        m, s = self.m, self.s
        x_rg = self.embedding()
        for i in range(self.last_layer):
            x_rg = self.decoder_layer(i, x_rg)
        step_up = step_down = 0
        split = self.method.split_layer is not None
        if split:
            loss_ws, head_grad = 0, 0
            step_up, step_down = self.split_boundary(x_rg)
        else:
            loss_ws, head_grad = self.head_and_loss(x_rg)
        if self.full:
            self.trainable = _full_param_shapes(m)
        if split:  # the client holds the embedding and layers [0, split)
            self.trainable = [t for t in self.trainable if _on_split_client(t[0], self.last_layer)]
        recompute = self._recompute_ops() if s.activation_checkpointing else []
        step_ops = self.fwd + recompute[::-1] + self.bwd[::-1]
        trainable_params = sum(math.prod(shape) for _, shape in self.trainable)
        step_ops += self._update_ops(trainable_params)
        evicted = self._sharding_ops(step_ops)
        largest = max((math.prod(shape) for _, shape in self.trainable), default=0) * self.b
        held = total_params(m) if not split else sum(  # SplitLoRA: the client's prefix
            math.prod(shape) for name, shape in _full_param_shapes(m)
            if _on_split_client(name, self.last_layer))
        memory = peak_memory(
            model_params=held, trainable_params=trainable_params, setup=s,
            activations_bytes=self._activation_bytes(), loss_workspace_bytes=loss_ws,
            head_grad_bytes=head_grad, largest_trainable_bytes=largest,
            fedprox=self.method.fedprox_mu > 0, evicted_weight_bytes=evicted,
            shard_bytes=_layer_params(m) * self.b)
        return Workload(
            model=m, method=self.method, setup=s, ops=tuple(step_ops),
            total_params=total_params(m), trainable_params=trainable_params,
            trainable_tensors=tuple(self.trainable), memory=memory,
            payload=round_payload(self.trainable, s), step_upload_bytes=step_up,
            step_download_bytes=step_down)

    def _activation_bytes(self) -> int:
        if not self.s.activation_checkpointing:
            return sum(self.acts.saved.values())
        outside = self.acts.per_layer.get(-1, 0)
        biggest_layer = max((v for k, v in self.acts.per_layer.items() if k >= 0), default=0)
        return outside + self.acts.layer_inputs + biggest_layer

    def _recompute_ops(self) -> list[Op]:
        """Activation checkpointing re-runs each layer's forward during backward."""
        return [Op(op.name + ".recompute", op.kind, "recompute", op.shape, op.dtype, op.flops,
                   op.bytes, op.count, op.layer, 0, op.kernels, op.impl)
                for op in self.fwd if op.layer >= 0]

    def _update_ops(self, trainable_params: int) -> list[Op]:
        ops: list[Op] = []
        P, b, n = trainable_params, self.b, self.n
        if self.method.fedprox_mu > 0:  # mu/2 ||w - w0||^2: forward, and its gradient
            ops.append(elementwise("fedprox.proximal", "elementwise", "forward", P, self.dt, b,
                                   3, 3, n))
            ops.append(elementwise("fedprox.proximal.backward", "elementwise", "backward", P,
                                   self.dt, b, 2, 3, n))
        if n > 1:
            ops.append(elementwise("grad_accumulate", "elementwise", "backward", P, self.dt, b,
                                   1, 3, n - 1))
        adamw = self.s.optimizer == "adamw"
        for tensor, shape in self.trainable:  # gradients are fresh each step (set_to_none)
            nbytes = math.prod(shape) * b
            if nbytes >= FRESH_PAGES_MIN_BYTES:
                ops.append(fresh_pages(f"{tensor}.grad.pages", "backward", nbytes, self.dt, 1))
                if adamw:  # the update's denominator: sqrt(v), then its quotient
                    ops.append(fresh_pages(f"{tensor}.adamw.pages", "optimizer", nbytes, self.dt,
                                           2))
        ops.append(Op(f"optimizer.{self.s.optimizer}", "optimizer", "optimizer",
                      (P, len(self.trainable)), self.dt,
                      (ADAMW_FLOPS_PER_PARAM if adamw else SGD_FLOPS_PER_PARAM) * P,
                      (ADAMW_PASSES if adamw else SGD_PASSES) * P * b, 1,
                      kernels=KERNELS["adamw.tensor" if adamw else "sgd.tensor"]
                      * max(1, len(self.trainable)), impl=self.s.optimizer))
        return ops

    def _sharding_ops(self, ops: list[Op]) -> int:
        """Evicted weights are read back (flash) and decoded for every forward and backward."""
        sh = self.s.sharding
        if sh is None:
            return 0
        weight_bytes = total_params(self.m) * self.b
        evicted = max(0, weight_bytes - int(sh.budget_mb * 1024 * 1024))
        if evicted == 0:
            return 0
        elements = evicted // self.b
        encoded = elements * ENCODING_BITS[sh.encoding] // 8
        passes = 2 * self.n  # each micro-batch touches every layer forward and backward
        if sh.store == "flash":
            ops.append(Op("sharding.read", "storage", "io", (encoded,), sh.encoding, 0.0,
                          float(encoded), passes))
            if self.full:
                ops.append(Op("sharding.write_back", "storage", "io", (encoded,), sh.encoding,
                              0.0, float(encoded), 1))
        if sh.encoding != self.dt:
            ops.append(elementwise("sharding.decode", "elementwise", "io", elements, self.dt,
                                   self.b, 2, 1.5, passes))
        return evicted


def _layer_params(model: ModelArch) -> int:
    """Parameters of one decoder layer: the unit sharding brings back at a time."""
    return sum(lin.params for lin in layer_linears(model)[0].values()) + sum(
        t.params for t in other_tensors(model) if t.layer == 0)


def _on_split_client(name: str, split_layer: int) -> bool:
    for part in name.split("."):
        if part.isdigit():
            return int(part) < split_layer
    return any(e in name for e in ("wte", "wpe", "embed_tokens"))


def _linear_param_shapes(model: ModelArch, lin: Linear) -> list[tuple[str, tuple[int, ...]]]:
    """Shapes as transformers stores them (gpt2's Conv1D keeps the weight as in x out)."""
    weight = (lin.in_features, lin.out_features) if model.family == "gpt2" and \
        lin.role != "lm_head" else (lin.out_features, lin.in_features)
    out: list[tuple[str, tuple[int, ...]]] = [(f"{lin.name}.weight", weight)]
    if lin.bias:
        out.append((f"{lin.name}.bias", (lin.out_features,)))
    return out


def _full_param_shapes(model: ModelArch) -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = []  # every parameter once, as transformers names it
    for t in other_tensors(model):
        if model.family == "gpt2" and t.name.split(".")[-1].startswith("ln"):
            out += [(f"{t.name}.weight", (t.shape[1],)), (f"{t.name}.bias", (t.shape[1],))]
        else:
            out.append((f"{t.name}.weight", t.shape))
    for lin in linears(model):
        if lin.role == "lm_head" and model.tied_embeddings:
            continue
        out += _linear_param_shapes(model, lin)
    return out
