"""Public measurements of on-device training and inference against what edgetwin's
shipped profiles predict for them, with the ratio (predicted / published).

Where a source states its setup fully, one prediction is made and its ratio should lie
within 0.67-1.5. Where it does not (batch, sequence, precision, method or power mode
unstated), the prediction is made over every plausible setup and the range is shown.
docs/evidence.md explains each row and its assumptions.

Usage: python benchmarks/public_evidence.py
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import edgetwin

BAND = (0.67, 1.5)
WIKITEXT2_TOKENS = {"gpt2": 2_400_000, "gemma": 2_200_000}  # train split, by tokenizer (assumed)


@dataclass(frozen=True)
class Row:
    source: str
    device: str
    model: str
    setup: str  # as far as the source states it
    published: tuple[float, float]  # low, high
    unit: str
    predicted: tuple[float, float]  # low, high over the plausible setups
    stated: bool  # the source states the setup fully

    def ratio(self) -> tuple[float, float]:
        mid = (self.published[0] + self.published[1]) / 2
        return self.predicted[0] / mid, self.predicted[1] / mid


def _span(values: Iterable[float]) -> tuple[float, float]:
    xs = list(values)
    return min(xs), max(xs)


def _config(folder: Path, name: str, data: dict[str, object]) -> str:
    path = folder / name / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    return str(path.parent)


def _finetune_s(model: str, device: str, examples: int, batch: int, seq: int, method: str,
                autocast: str | None) -> tuple[float, float]:
    """Time (s) and energy (J) of training on `examples` sequences."""
    p = edgetwin.price_workload(model, device, method=method, batch=batch, seq=seq,
                                autocast=autocast)
    steps = examples / batch
    return steps * p.step_time_s, steps * p.step_energy_j


def orin_nano_gpt2(distil: str) -> list[Row]:
    """Choi, Lee, Kang (KICS 2025, "edge-llm-power"): GPT-2 and DistilGPT2 fine-tuned on
    10,000 SQuAD2 examples for 2 epochs on a Jetson Orin Nano (JetPack 6); batch,
    sequence, precision and power mode not stated."""
    setups = list(itertools.product((4, 8, 16), (128, 256, 384), (None, "fp16"),
                                    ("jetson-orin-nano-8gb", "jetson-orin-nano-8gb@super")))
    out = []
    runs = {}
    for label, model, minutes, wh in (("GPT-2", "gpt2", 195 + 26 / 60, 36.33),
                                      ("DistilGPT2", distil, 156 + 54 / 60, 28.91)):
        priced = [_finetune_s(model, dev, 20_000, b, s, "full", amp)
                  for b, s, amp, dev in setups]
        runs[label] = priced
        setup = "full fine-tuning, 20,000 sequences; batch 4-16, seq 128-384, fp32 or fp16 " \
                "autocast, 15 W or Super mode"
        out.append(Row("edge-llm-power (KICS 2025)", "jetson-orin-nano-8gb", label, setup,
                       (minutes, minutes), "min", _span(t / 60 for t, _ in priced), False))
        out.append(Row("edge-llm-power (KICS 2025)", "jetson-orin-nano-8gb", label, setup,
                       (wh, wh), "Wh", _span(e / 3600 for _, e in priced), False))
    ratios = [d[0] / g[0] for d, g in zip(runs["DistilGPT2"], runs["GPT-2"], strict=True)]
    out.append(Row("edge-llm-power (KICS 2025)", "jetson-orin-nano-8gb",
                   "DistilGPT2 / GPT-2", "time ratio, same setup", (0.803, 0.803), "x",
                   _span(ratios), False))
    return out


def agx_orin_bert_large() -> list[Row]:
    """dream-lab/pagoda (roofline_batch_size_expt.ipynb): BERT-large inference in PyTorch
    on an AGX Orin in MAXN, batch 1-32: 1.28-1.32 TFLOP/s achieved at 56.8-63.6 W. The
    profile's large-matmul fp32 rate and busy power are the prediction."""
    p = edgetwin.load_profile("jetson-agx-orin-64gb")
    mm = p.compute["matmul"]
    return [Row("pagoda (dream-lab)", "jetson-agx-orin-64gb", "BERT-large inference",
                "MAXN, batch 1-32, fp32 matmuls", (1.28, 1.32), "TFLOP/s",
                (mm.flops_per_s / 1e12, mm.flops_per_s / 1e12), True),
            Row("pagoda (dream-lab)", "jetson-agx-orin-64gb", "BERT-large inference",
                "MAXN, batch 1-32", (56.8, 63.6), "W", (mm.busy_power_w, mm.busy_power_w),
                True)]


def agx_orin_llama7b(llama: str) -> list[Row]:
    """PockEngine (arXiv 2310.17752): Llama-2-7B fine-tuning in PyTorch on an AGX Orin at
    about 70 tokens/s (its 550 tokens/s at 7.9x); method, batch, sequence and precision
    not stated. Setups that do not fit in 64 GB are left out."""
    rates = []
    for method, batch, seq, (dtype, amp) in itertools.product(
            ("lora", "full"), (1, 4, 8), (128, 256, 512), (("bf16", None), ("fp32", "bf16"))):
        p = edgetwin.price_workload(llama, "jetson-agx-orin-64gb", method=method, batch=batch,
                                    seq=seq, dtype=dtype, autocast=amp)
        if p.fits_in_memory:
            rates.append(batch * seq / p.step_time_s)
    return [Row("PockEngine (MICRO 2023)", "jetson-agx-orin-64gb", "Llama-2-7B",
                "fine-tuning; LoRA or full, batch 1-8, seq 128-512, bf16 or fp32 + bf16 autocast",
                (70, 70), "tokens/s", _span(rates), False)]


def mobilefinetuner_readme() -> list[Row]:
    """MobileFineTuner's README: one WikiText-2 epoch on "a modern mobile SoC": GPT-2 LoRA
    b4 s128 4-6 h, GPT-2-medium 10-14 h, Gemma-3-270M b4 s256 8-12 h. The SoC is not
    named: the two phone profiles are the range."""
    out = []
    phones = ("flagship-phone-sd8gen3", "hi-nova-9-pro")
    for model, batch, seq, hours, tokens in (
            ("gpt2", 4, 128, (4, 6), WIKITEXT2_TOKENS["gpt2"]),
            ("gpt2-medium", 4, 128, (10, 14), WIKITEXT2_TOKENS["gpt2"]),
            ("gemma-3-270m", 4, 256, (8, 12), WIKITEXT2_TOKENS["gemma"])):
        steps = tokens / (batch * seq)
        predicted = [steps * edgetwin.price_workload(model, phone, batch=batch, seq=seq)
                     .step_time_s / 3600 for phone in phones]
        out.append(Row("MobileFineTuner README", "a modern mobile SoC", model,
                       f"LoRA (default targets), batch {batch}, seq {seq}, one WikiText-2 epoch",
                       hours, "h", _span(predicted), False))
    return out


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        distil = _config(folder, "distilgpt2", {
            "model_type": "gpt2", "n_embd": 768, "n_head": 12, "n_layer": 6,
            "vocab_size": 50257, "n_positions": 1024, "activation_function": "gelu_new"})
        llama = _config(folder, "llama-2-7b", {
            "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
            "vocab_size": 32000, "max_position_embeddings": 4096})
        rows = [*orin_nano_gpt2(distil), *agx_orin_bert_large(), *agx_orin_llama7b(llama),
                *mobilefinetuner_readme()]
    print(f"{'source':<27} {'device':<21} {'model':<21} {'published':>16} "
          f"{'predicted':>18} {'ratio':>12}  setup")
    missed = 0
    for r in rows:
        pub = _fmt(r.published, r.unit)
        pred = _fmt(r.predicted, r.unit)
        lo, hi = r.ratio()
        ratio = f"{lo:.2f}" if lo == hi else f"{lo:.2f}-{hi:.2f}"
        inside = BAND[0] <= lo and hi <= BAND[1]
        mark = "" if not r.stated else ("  ok" if inside else "  OUTSIDE 0.67-1.5")
        missed += r.stated and not inside
        print(f"{r.source:<27} {r.device:<21} {r.model:<21} {pub:>16} {pred:>18} "
              f"{ratio:>12}{mark}  {r.setup}{'' if r.stated else ' (not stated: a range)'}")
    stated = sum(r.stated for r in rows)
    print(f"\n{stated} rows whose setup the source states: {stated - missed} within "
          f"{BAND[0]}-{BAND[1]}x; {len(rows) - stated} rows over plausible setups")
    return 0


def _fmt(span: tuple[float, float], unit: str) -> str:
    lo, hi = span
    digits = 2 if max(abs(lo), abs(hi)) < 10 else 0 if max(abs(lo), abs(hi)) >= 100 else 1
    text = f"{lo:,.{digits}f}" if lo == hi else f"{lo:,.{digits}f}-{hi:,.{digits}f}"
    return f"{text} {unit}"


if __name__ == "__main__":
    sys.exit(main())
