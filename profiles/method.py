"""Fine-tuning methods: what is trained, and what a client adds to each step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgetwin.common.errors import InputError
from edgetwin.profiles.models import ModelArch
from edgetwin.profiles.modules import Linear, linears

MethodKind = Literal["full", "lora"]

# The names PEFT's "all-linear" shorthand expands to: every projection but the output head.
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class Method:
    """Full fine-tuning or LoRA, with the federated variants that change a client's step.

    - FedProx: `fedprox_mu > 0` adds the proximal term mu/2 ||w - w_global||^2, which
      costs an elementwise pass over the trainable weights per step and a copy of them.
    - FlexLoRA: each client trains LoRA at its own `lora_rank`; the step is plain LoRA
      at that rank (the server's SVD re-projection is a server cost).
    - SplitLoRA: `split_layer = k` makes the client run only the embedding and decoder
      layers [0, k) with their adapters, upload the layer-k activations each micro-batch
      and receive their gradient back. At k = 0 (as EdgeFlowerTune ran it) the client
      runs the embedding only and uploads its output; with LoRA it trains nothing, so
      no gradient comes back.
    """

    kind: MethodKind = "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    lora_dropout: float = 0.0
    fedprox_mu: float = 0.0
    split_layer: int | None = None

    def validate(self, model: ModelArch, where: str = "method") -> None:
        if self.kind not in ("full", "lora"):
            raise InputError(where, "kind", f"expected full or lora, got {self.kind!r}")
        if self.kind == "lora":
            if self.lora_rank <= 0:
                raise InputError(where, "lora_rank", f"must be > 0, got {self.lora_rank}")
            if not self.lora_targets:
                raise InputError(where, "lora_targets", "needs at least one module name")
            names = [lin.name for lin in linears(model)]
            for target in self.lora_targets:
                if target != ALL_LINEAR and not any(_peft_match(n, target) for n in names):
                    short = sorted({n.rsplit(".", 1)[-1] for n in names})
                    raise InputError(where, "lora_targets",
                                     f"{target!r} matches no module of {model.name} "
                                     f"(its modules: {', '.join(short)})")
        if self.fedprox_mu < 0:
            raise InputError(where, "fedprox_mu", f"must be >= 0, got {self.fedprox_mu}")
        if not 0 <= self.lora_dropout < 1:
            raise InputError(where, "lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")
        if self.split_layer is not None and not 0 <= self.split_layer < model.layers:
            raise InputError(where, "split_layer",
                             f"must be in 0..{model.layers - 1} (0: the client runs the "
                             f"embedding only), got {self.split_layer}")

    def is_lora_target(self, lin: Linear) -> bool:
        """PEFT's rule: a name equal to a target, or ending in "." + target."""
        if self.kind != "lora":
            return False
        if ALL_LINEAR in self.lora_targets and lin.role != "lm_head":
            return True
        return any(_peft_match(lin.name, t) for t in self.lora_targets)


def _peft_match(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)
