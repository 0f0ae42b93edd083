"""Exact counts against the real modules: PEFT's trainable parameters, torch's FLOPs."""

from __future__ import annotations

import pytest

from edgetwin.profiles.method import Method
from edgetwin.profiles.models import CATALOGUE, ModelArch
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from edgetwin.calibration.hf_models import build_model, count_params  # noqa: E402

LLAMA_LIKE = ["gemma-3-270m", "gemma-3-1b", "qwen2.5-0.5b"]
LORA_CASES = [
    *[(n, Method("lora", 8, 32.0, ("q_proj", "k_proj", "v_proj", "o_proj"))) for n in LLAMA_LIKE],
    *[(n, Method("lora", 16, 16.0, ("q_proj", "v_proj"))) for n in LLAMA_LIKE],
    *[(n, Method("lora", 4, 8.0, ("all-linear",))) for n in LLAMA_LIKE],
    *[(n, Method("lora", 2, 4.0, ("gate_proj", "up_proj", "down_proj"))) for n in LLAMA_LIKE],
    ("gpt2", Method("lora", 8, 16.0, ("c_attn",))),
    ("gpt2", Method("lora", 4, 8.0, ("c_attn", "c_proj"))),  # c_proj matches attn and mlp
    ("gpt2-medium", Method("lora", 32, 64.0, ("c_fc",))),
    ("gpt2-medium", Method("lora", 8, 16.0, ("all-linear",))),
]


@pytest.mark.parametrize(("name", "method"), LORA_CASES,
                         ids=[f"{n}-r{m.lora_rank}-{'+'.join(m.lora_targets)}"
                              for n, m in LORA_CASES])
def test_trainable_params_equal_peft(name: str, method: Method) -> None:
    arch = CATALOGUE[name]
    w = build_workload(arch, method, TrainingSetup())
    total, trainable = count_params(build_model(arch, method, device="meta"))
    assert w.trainable_params == trainable
    assert w.total_params + w.trainable_params == total


def _counted_flops(name: str, method: Method, setup: TrainingSetup) -> int:
    model = build_model(CATALOGUE[name], method, device="meta")
    ids = torch.zeros(setup.batch, setup.seq, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        for _ in range(setup.grad_accum):
            model(input_ids=ids, labels=ids).loss.backward()
    return int(counter.get_total_flops())


FLOP_CASES = [
    (n, m, s)
    for n in CATALOGUE
    for m in (Method("full"),
              Method("lora", 8, 16.0, ("c_attn",) if "gpt2" in n else ("q_proj", "v_proj")))
    for s in (TrainingSetup(batch=2, seq=32),)
] + [
    ("gemma-3-270m", Method("lora", 8, 32.0, ("q_proj", "k_proj", "v_proj", "o_proj")),
     TrainingSetup(batch=1, seq=64, grad_accum=3)),
    ("qwen2.5-0.5b", Method("lora", 4, 8.0, ("all-linear",)), TrainingSetup(batch=3, seq=17)),
    ("gpt2", Method("full"), TrainingSetup(batch=1, seq=200)),
]


@pytest.mark.parametrize(("name", "method", "setup"), FLOP_CASES,
                         ids=[f"{n}-{m.kind}-{s.batch}x{s.seq}x{s.grad_accum}"
                              for n, m, s in FLOP_CASES])
def test_forward_backward_flops_within_2pct_of_torch(name: str, method: Method,
                                                     setup: TrainingSetup) -> None:
    w = build_workload(CATALOGUE[name], method, setup)
    counted = _counted_flops(name, method, setup)
    assert abs(w.step_flops / counted - 1) <= 0.02, (w.step_flops, counted)


TINY = ModelArch("tiny-tied", "llama", 64, 2, 4, 2, 16, 128, 1000, True, "silu")


@pytest.mark.parametrize("tied", [True, False])
def test_a_tied_table_gets_its_two_gradients_summed_as_the_workload_says(tied: bool) -> None:
    """autograd adds the output head's and the lookup's gradients of a shared table into
    a new tensor, once a step; the workload carries that add exactly when torch runs it."""
    import dataclasses

    from torch.profiler import ProfilerActivity, profile

    arch = dataclasses.replace(TINY, tied_embeddings=tied)
    model = build_model(arch, Method("full"))
    ids = torch.randint(0, arch.vocab, (2, 16))
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        model(input_ids=ids, labels=ids).loss.backward()
    table = [arch.vocab, arch.hidden]
    sums = [e for e in prof.events() if e.name == "aten::add"
            and e.input_shapes[:2] == [table, table]]
    w = build_workload(arch, Method("full"), TrainingSetup(batch=2, seq=16))
    ops = [op for op in w.ops if op.name == "embedding.tied_grad_sum"]
    assert len(sums) == len(ops) == (1 if tied else 0)
    if tied:
        assert ops[0].bytes == 3 * arch.vocab * arch.hidden * 4
