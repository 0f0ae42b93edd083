"""Micro-benchmarks of every op kind the workload model emits, in PyTorch.

Each `Case` is one op at one shape and phase, with its FLOPs, bytes and kernel
launches counted exactly as the workload model counts them (edgetwin.profiles.ops), so a
cost fitted here prices a workload's op directly. Shapes are drawn around what
the catalogue models need; `neighbours` draws more around the shapes the fit gets
most wrong (adaptive sampling, in the way of nn-Meter).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgetwin.calibration.meters.procmem import process_memory, reset_peak
from edgetwin.calibration.trace import Latency, Measurement
from edgetwin.profiles.ops import (
    ADAMW_FLOPS_PER_PARAM,
    ADAMW_PASSES,
    KERNELS,
    SGD_FLOPS_PER_PARAM,
    SGD_PASSES,
    VARIANTS,
)

Runner = Callable[[], Any]


@dataclass(frozen=True)
class Case:
    """One op at one shape; `impl` says which implementation the suite times."""

    op: str
    impl: str
    phase: str
    shape: tuple[int, ...]
    flops: float
    bytes: float
    kernels: int

    @property
    def id(self) -> str:
        return f"{self.op}/{self.impl}/{self.phase}/{'x'.join(map(str, self.shape))}"


def _ew(op: str, variant: str, impl: str, phase: str, shape: tuple[int, ...], elements: int,
        kernels_key: str | None = None, dtype_bytes: int = 4) -> Case:
    flops_per, passes = VARIANTS[f"{variant}.{phase}"]
    kernels = KERNELS[kernels_key] if kernels_key else 1
    return Case(op, impl, phase, shape, flops_per * elements, passes * elements * dtype_bytes,
                kernels)


PRECISIONS = {"tf32": 4, "fp16": 2, "bf16": 2}  # a GPU's other matmul precisions, bytes each


def matmul_case(m: int, k: int, n: int, precision: str = "fp32") -> Case:
    """A product in fp32 (torch's default: no TF32), or in one of PRECISIONS."""
    impl = "mm" if precision == "fp32" else f"mm_{precision}"
    return Case("matmul", impl, "forward", (m, k, n), 2.0 * m * k * n,
                float((m * k + k * n + m * n) * PRECISIONS.get(precision, 4)), 1)


def precision_of(impl: str) -> str:
    """The precision a matmul case runs in (`mm_bf16` -> bf16)."""
    return impl.removeprefix("mm_") if impl.startswith("mm_") else "fp32"


def precision_cases(rng: np.random.Generator, quick: bool) -> list[Case]:
    """Products in each of a GPU's other precisions, at shapes where the rate shows."""
    cases = []
    for _ in range(10 if quick else 30):
        m, k, n = (_logint(rng, 128, 4096) for _ in range(3))
        cases += [matmul_case(m, k, n, precision=p) for p in PRECISIONS]
    return cases


def attention_case(b: int, h: int, s: int, d: int, phase: str) -> Case:
    fwd = 4.0 * b * h * s * s * d
    moved = 4.0 * b * s * h * d * 4 + 3.0 * b * h * s * s * 4
    factor = 1.0 if phase == "forward" else 2.0
    return Case("attention", "eager", phase, (b, h, s, s, d), fwd * factor, moved * factor,
                KERNELS[f"attention_eager.{phase}"])


def norm_case(impl: str, rows: int, width: int, phase: str) -> Case:
    return _ew("norm", "norm", impl, phase, (rows, width), rows * width, f"{impl}.{phase}")


def activation_case(impl: str, n: int, phase: str) -> Case:
    variant = "activation_composite" if impl == "gelu_new" else "activation"
    return _ew("activation", variant, impl, phase, (n,), n, f"{variant}.{phase}")


def elementwise_case(impl: str, n: int, phase: str) -> Case:
    return _ew("elementwise", impl, impl, phase, (n,), n)


def fresh_pages_case(nbytes: int) -> Case:
    return Case("elementwise", "fresh_pages", "forward", (nbytes,), 0.0, float(nbytes), 0)


def embedding_case(tokens: int, vocab: int, hidden: int, phase: str) -> Case:
    elements = tokens * hidden if phase == "forward" else vocab * hidden
    return _ew("embedding", "embedding", "embedding", phase, (tokens, vocab, hidden), elements)


def cross_entropy_case(tokens: int, vocab: int, phase: str) -> Case:
    return _ew("cross_entropy", "cross_entropy", "cross_entropy", phase, (tokens, vocab),
               tokens * vocab, f"cross_entropy.{phase}")


def optimizer_case(impl: str, params: int, tensors: int) -> Case:
    adamw = impl == "adamw"
    return Case("optimizer", impl, "optimizer", (params, tensors),
                (ADAMW_FLOPS_PER_PARAM if adamw else SGD_FLOPS_PER_PARAM) * params,
                (ADAMW_PASSES if adamw else SGD_PASSES) * params * 4,
                KERNELS["adamw.tensor" if adamw else "sgd.tensor"] * tensors)


def _logint(rng: np.random.Generator, lo: float, hi: float) -> int:
    return round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))


def base_cases(rng: np.random.Generator, quick: bool) -> list[Case]:
    """Shapes around the catalogue's: hidden 64-2048, tokens 16-2048, ranks 4-64."""
    scale = 1 if quick else 3
    cases: list[Case] = []
    for _ in range(40 * scale):  # projections and their two backward products
        t, a, b = _logint(rng, 16, 2048), _logint(rng, 64, 3072), _logint(rng, 64, 3072)
        cases.append(matmul_case(*rng.permutation([t, a, b]).tolist()))
    for _ in range(10 * scale):  # LoRA's low-rank products
        t, d, r = _logint(rng, 16, 2048), _logint(rng, 64, 3072), _logint(rng, 2, 64)
        cases.append(matmul_case(*rng.permutation([t, d, r]).tolist()))
    for _ in range(5 * scale):  # output heads over a vocabulary
        cases.append(matmul_case(_logint(rng, 16, 1024), _logint(rng, 64, 1024),
                                 _logint(rng, 4000, 32000)))
    for _ in range(6 * scale):
        b, h = int(rng.integers(1, 5)), int(rng.choice([2, 4, 8, 12, 16]))
        s, d = _logint(rng, 16, 512), int(rng.choice([32, 64, 128, 256]))
        cases += [attention_case(b, h, s, d, "forward"), attention_case(b, h, s, d, "backward")]
    for _ in range(5 * scale):
        rows, width = _logint(rng, 16, 4096), _logint(rng, 64, 2048)
        for impl in ("layernorm", "rmsnorm"):
            cases += [norm_case(impl, rows, width, "forward"),
                      norm_case(impl, rows, width, "backward")]
    for _ in range(4 * scale):
        n = _logint(rng, 10_000, 8_000_000)
        for impl in ("gelu_tanh", "silu", "gelu_new"):
            cases += [activation_case(impl, n, "forward"), activation_case(impl, n, "backward")]
        cases += [elementwise_case("add", n, "forward"), elementwise_case("mul", n, "forward"),
                  elementwise_case("mul", n, "backward"),
                  elementwise_case("dropout", n, "forward"),
                  elementwise_case("dropout", n, "backward")]
    for _ in range(3 * scale):
        t, v, h = _logint(rng, 16, 2048), _logint(rng, 1000, 50000), _logint(rng, 64, 1024)
        cases += [embedding_case(t, v, h, "forward"), embedding_case(t, v, h, "backward")]
        t2, v2 = _logint(rng, 16, 1024), _logint(rng, 1000, 40000)
        cases += [cross_entropy_case(t2, v2, "forward"), cross_entropy_case(t2, v2, "backward")]
    for _ in range(3 * scale):  # large allocations: the page faults of fresh memory
        cases.append(fresh_pages_case(_logint(rng, 40, 400) * 1024 * 1024))
    # the physical bounds of every fit (edgetwin.calibration.bounds): all-but-empty adds (launch)
    # and a large one (DRAM bandwidth)
    cases += [elementwise_case("add", n, "forward") for n in (1, 16, 256, 16_000_000)]
    for _ in range(3 * scale):
        tensors = _logint(rng, 4, 300)
        params = max(tensors, _logint(rng, 10_000, 20_000_000))
        cases += [optimizer_case("adamw", params, tensors), optimizer_case("sgd", params, tensors)]
    return cases


def neighbours(case: Case, rng: np.random.Generator, n: int) -> list[Case]:
    """Cases of the same op and phase at shapes near `case` (each dimension x0.6-1.6)."""
    out = []
    for _ in range(n):
        f = np.exp(rng.uniform(np.log(0.6), np.log(1.6), len(case.shape)))
        dims = [max(1, round(d * x)) for d, x in zip(case.shape, f, strict=True)]
        out.append(_rebuild(case, dims))
    return out


def _rebuild(case: Case, dims: list[int]) -> Case:
    if case.op == "matmul":
        return matmul_case(dims[0], dims[1], dims[2], precision=precision_of(case.impl))
    if case.op == "attention":
        b, h, s, _, d = dims
        return attention_case(b, h, s, d, case.phase)
    if case.op == "norm":
        return norm_case(case.impl, dims[0], dims[1], case.phase)
    if case.op == "activation":
        return activation_case(case.impl, dims[0], case.phase)
    if case.impl == "fresh_pages":
        return fresh_pages_case(dims[0])
    if case.op == "elementwise":
        return elementwise_case(case.impl, dims[0], case.phase)
    if case.op == "embedding":
        return embedding_case(dims[0], dims[1], dims[2], case.phase)
    if case.op == "cross_entropy":
        return cross_entropy_case(dims[0], dims[1], case.phase)
    return optimizer_case(case.impl, max(dims[0], dims[1]), dims[1])


# --- running ---------------------------------------------------------------------------------
def measure(case: Case, device: str, min_time_s: float, max_reps: int,
            facts: dict[str, Any]) -> Measurement:
    """Time `case` on `device`: latency statistics and the peak memory it took."""
    import torch

    run = build_runner(case, device)
    reset_peak()
    before = process_memory()["VmRSS"]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    latency = time_runner(run, device, min_time_s, max_reps)
    peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
            else max(process_memory().get("VmHWM", 0) - before, 0))
    del run
    return Measurement(case=case.id, op=case.op, phase=case.phase, shape=case.shape,
                       dtype=precision_of(case.impl), flops=case.flops, bytes=case.bytes,
                       kernels=case.kernels, latency_s=latency, device=facts, source="torch",
                       peak_memory_bytes=int(peak))


def build_runner(case: Case, device: str) -> Runner:
    """A closure that runs `case` once on `device` (tensors allocated up front)."""
    import torch
    import torch.nn.functional as F

    dev = torch.device(device)

    def rand(*shape: int, grad: bool = False) -> Any:
        return torch.randn(*shape, device=dev, requires_grad=grad)

    def timed_backward(out: Any, inputs: list[Any]) -> Runner:
        grad = torch.randn_like(out)
        return lambda: torch.autograd.grad(out, inputs, grad, retain_graph=True)

    s, phase = case.shape, case.phase
    if case.op == "matmul":
        precision = precision_of(case.impl)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
        a = torch.randn(s[0], s[1], device=dev, dtype=dtype)
        b = torch.randn(s[1], s[2], device=dev, dtype=dtype)
        if precision != "tf32":
            return lambda: torch.mm(a, b)

        def tf32_mm() -> Any:  # TF32 on for this product only (torch leaves it off)
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                return torch.mm(a, b)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = False
        return tf32_mm
    if case.op == "attention":
        bsz, h, sq, _, d = s
        q, k, v = (rand(bsz, h, sq, d, grad=True) for _ in range(3))
        mask = torch.full((sq, sq), float("-inf"), device=dev).triu(1)

        def attend() -> Any:
            scores = torch.matmul(q, k.transpose(2, 3)) * (d ** -0.5) + mask
            return torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32), v)

        return attend if phase == "forward" else timed_backward(attend(), [q, k, v])
    if case.op == "norm":
        rows, width = s
        x, w = rand(rows, width, grad=True), rand(width, grad=True)
        if case.impl == "layernorm":
            bias = rand(width, grad=True)

            def norm() -> Any:
                return F.layer_norm(x, (width,), w, bias)
        else:
            def norm() -> Any:
                hs = x.to(torch.float32)
                hs = hs * torch.rsqrt(hs.pow(2).mean(-1, keepdim=True) + 1e-6)
                return w * hs
        return norm if phase == "forward" else timed_backward(norm(), [x])
    if case.op == "activation":
        x = rand(s[0], grad=True)
        fn: Callable[[], Any]
        if case.impl == "gelu_tanh":
            def fn() -> Any:
                return F.gelu(x, approximate="tanh")
        elif case.impl == "silu":
            def fn() -> Any:
                return F.silu(x)
        else:
            def fn() -> Any:
                return 0.5 * x * (1.0 + torch.tanh(0.7978845608 * (x + 0.044715 *
                                                                   torch.pow(x, 3.0))))
        return fn if phase == "forward" else timed_backward(fn(), [x])
    if case.impl == "fresh_pages":
        return fresh_pages_runner(s[0]) if dev.type == "cpu" else \
            (lambda: torch.empty(s[0] // 4, device=dev).fill_(1.0))
    if case.op == "elementwise":
        x, y = rand(s[0], grad=True), rand(s[0], grad=True)
        if case.impl == "add":
            return lambda: x + y
        if case.impl == "dropout":
            if phase == "forward":
                return lambda: F.dropout(x, 0.1, training=True)
            return timed_backward(F.dropout(x, 0.1, training=True), [x])
        return (lambda: x * y) if phase == "forward" else timed_backward(x * y, [x, y])
    if case.op == "embedding":
        tokens, vocab, hidden = s
        ids = torch.randint(0, vocab, (tokens,), device=dev)
        table = rand(vocab, hidden, grad=True)
        if phase == "forward":
            return lambda: F.embedding(ids, table)
        return timed_backward(F.embedding(ids, table), [table])
    if case.op == "cross_entropy":
        tokens, vocab = s
        logits = rand(tokens, vocab, grad=True)
        target = torch.randint(0, vocab, (tokens,), device=dev)
        if phase == "forward":
            return lambda: F.cross_entropy(logits, target)
        loss = F.cross_entropy(logits, target)
        return lambda: torch.autograd.grad(loss, [logits], retain_graph=True)
    params_n, tensors = s
    sizes = np.full(tensors, params_n // tensors)
    sizes[: params_n - int(sizes.sum())] += 1
    params = [torch.nn.Parameter(rand(int(n))) for n in sizes]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(params, lr=1e-4) if case.impl == "adamw" else \
        torch.optim.SGD(params, lr=1e-4)
    opt.step()  # creates the optimizer state outside the timed region
    return opt.step


def fresh_pages_runner(nbytes: int) -> Runner:
    """Filling memory straight from the kernel, as a step's large tensors are under
    glibc's defaults: `torch.empty` in this long-lived process may instead reuse a free
    chunk of the heap that earlier cases left, whose pages are already mapped."""
    import mmap

    import torch

    def run() -> None:
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        torch.frombuffer(buf, dtype=torch.float32).fill_(1.0)
        buf.close()

    return run


def time_runner(run: Runner, device: str, min_time_s: float, max_reps: int) -> Latency:
    """Warm up, then repeat until `min_time_s` of op time has passed (at least 3
    repetitions, at most max_reps)."""
    import torch

    sync: Callable[[], None] = torch.cuda.synchronize if device.startswith("cuda") \
        else (lambda: None)
    for _ in range(2):
        run()
    sync()
    samples: list[float] = []
    while len(samples) < 3 or (sum(samples) < min_time_s and len(samples) < max_reps):
        t0 = time.perf_counter()
        run()
        sync()
        samples.append(time.perf_counter() - t0)
    return Latency(median=statistics.median(samples), min=min(samples), max=max(samples),
                   mean=statistics.fmean(samples),
                   std=statistics.pstdev(samples) if len(samples) > 1 else 0.0,
                   reps=len(samples))
