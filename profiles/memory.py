"""Peak memory of a training step, and what it is made of at that moment.

Two moments compete: the start of backward (every saved activation alive, the
loss gradients being formed, gradients carried over from earlier micro-batches)
and the optimizer update (every gradient alive, the update's temporaries).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgetwin.profiles.training_setup import ENCODING_BITS, TrainingSetup


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes by purpose at the peak moment; `peak_bytes` is their sum."""

    weights_bytes: int
    gradients_bytes: int
    optimizer_state_bytes: int
    activations_bytes: int
    workspace_bytes: int
    sharding_buffers_bytes: int
    peak_moment: str  # "backward" or "optimizer"
    persistent_bytes: int  # what stays resident between steps
    # activations freed by backward and gradients freed after the update, every step:
    # the holes a heap allocator may keep resident (see MemorySpec.heap_retention)
    freed_each_step_bytes: int = 0

    @property
    def peak_bytes(self) -> int:
        return (self.weights_bytes + self.gradients_bytes + self.optimizer_state_bytes
                + self.activations_bytes + self.workspace_bytes + self.sharding_buffers_bytes)

    def as_dict(self) -> dict[str, int | str]:
        out: dict[str, int | str] = dict(asdict(self))
        out["peak_bytes"] = self.peak_bytes
        return out


def peak_memory(*, model_params: int, trainable_params: int, setup: TrainingSetup,
                activations_bytes: int, loss_workspace_bytes: int, head_grad_bytes: int,
                largest_trainable_bytes: int, fedprox: bool, evicted_weight_bytes: int,
                shard_bytes: int) -> MemoryBreakdown:
    b = setup.dtype_bytes
    weights = model_params * b - evicted_weight_bytes
    sharding = 0
    if evicted_weight_bytes and setup.sharding is not None:
        sharding = shard_bytes  # one decoded layer in flight; the head streams in slices
        if setup.sharding.store == "ram":
            sharding += evicted_weight_bytes * ENCODING_BITS[setup.sharding.encoding] // (8 * b)
    grads = trainable_params * b
    state = trainable_params * b * (2 if setup.optimizer == "adamw" else 0)
    if fedprox:  # the global weights the proximal term pulls towards
        state += trainable_params * b
    carried = grads if setup.grad_accum > 1 else head_grad_bytes
    at_backward = activations_bytes + loss_workspace_bytes + carried
    # single-tensor AdamW forms its denominator per parameter tensor as sqrt(v) / c: two
    # temporaries of the tensor's size alive together
    at_update = grads + (2 * largest_trainable_bytes if setup.optimizer == "adamw" else 0)
    persistent = weights + state + sharding
    freed = activations_bytes + grads
    if at_backward >= at_update:
        return MemoryBreakdown(weights, carried, state, activations_bytes, loss_workspace_bytes,
                               sharding, "backward", persistent, freed)
    return MemoryBreakdown(weights, grads, state, 0, at_update - grads, sharding, "optimizer",
                           persistent, freed)
