"""`edgetwin workload` and `edgetwin profiles`: the command-line face of this package."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from edgetwin.common.console import out_console
from edgetwin.common.errors import InputError
from edgetwin.profiles.costmodel import MIB, StepCost, predict_step
from edgetwin.profiles.device import DeviceProfile, load_profile, shipped_profiles
from edgetwin.profiles.models import CATALOGUE
from edgetwin.profiles.schema import dump_yaml, load_yaml, to_mapping
from edgetwin.profiles.workload import Workload
from edgetwin.profiles.workload_spec import WorkloadSpec


def add_workload_parser(sub: Any) -> None:
    p = sub.add_parser("workload", help="cost of one training step of a model and method",
                       description="Decompose one optimizer step into ops and price it on "
                       "device profiles. One step = GRAD_ACCUM micro-batches of BATCH x SEQ.")
    p.add_argument("--model", required=True,
                   help=f"catalogue name ({', '.join(CATALOGUE)}) or a config.json path")
    p.add_argument("--method", choices=["full", "lora"], default="lora")
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--lora-alpha", type=float, default=None, help="default: 2 x rank")
    p.add_argument("--lora-targets", default=None,
                   help="comma-separated module names, as PEFT matches them, or all-linear "
                   "(default: q_proj,v_proj; c_attn for gpt2)")
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--fedprox-mu", type=float, default=0.0, help="> 0 adds FedProx's term")
    p.add_argument("--split-layer", type=int, default=None,
                   help="SplitLoRA: the client runs layers before this one")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32",
                   help="weights and activations")
    p.add_argument("--autocast", choices=["fp16", "bf16"], default=None,
                   help="PyTorch AMP: products in this precision over fp32 master weights "
                   "(their casts and the fp32 optimizer counted)")
    p.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--memory-efficient-attention", action="store_true")
    p.add_argument("--serialization", choices=["raw", "npy", "npy64"], default="raw")
    p.add_argument("--shard-budget-mb", type=float, default=None,
                   help="parameter sharding: resident weight budget in MiB")
    p.add_argument("--shard-encoding", choices=["fp32", "fp16", "int8", "int4"], default="fp16")
    p.add_argument("--shard-store", choices=["ram", "flash"], default="flash")
    p.add_argument("--energy-aware-sleep", action="store_true",
                   help="MobileFineTuner's sleep between steps (published thresholds)")
    p.add_argument("--battery-pct", type=float, default=100.0)
    p.add_argument("--temperature-c", type=float, default=None)
    p.add_argument("--device", default=None,
                   help="profile name or YAML path; several comma-separated, or 'all'")
    p.add_argument("--ops", action="store_true", help="also list every op")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="write a chart of step time and memory per device")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run_workload)


def add_profiles_parser(sub: Any) -> None:
    p = sub.add_parser("profiles", help="list, show or validate device profiles")
    ps = p.add_subparsers(dest="action", required=True)
    ps.add_parser("list", help="the shipped profiles").set_defaults(func=run_profiles_list)
    show = ps.add_parser("show", help="one profile, resolved, with its hash")
    show.add_argument("name")
    show.set_defaults(func=run_profiles_show)
    val = ps.add_parser("validate", help="check a profile YAML")
    val.add_argument("file")
    val.set_defaults(func=run_profiles_validate)


def spec_from_args(args: argparse.Namespace) -> WorkloadSpec:
    """The step `edgetwin workload`'s flags describe."""
    targets = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip()) \
        if args.lora_targets else None
    return WorkloadSpec(
        model=args.model, batch=args.batch, seq=args.seq, method=args.method,
        lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, lora_targets=targets,
        lora_dropout=args.lora_dropout, fedprox_mu=args.fedprox_mu,
        split_layer=args.split_layer, grad_accum=args.grad_accum, dtype=args.dtype,
        autocast=args.autocast, optimizer=args.optimizer,
        activation_checkpointing=args.activation_checkpointing,
        memory_efficient_attention=args.memory_efficient_attention,
        serialization=args.serialization, shard_budget_mb=args.shard_budget_mb,
        shard_encoding=args.shard_encoding, shard_store=args.shard_store,
        energy_aware_sleep=args.energy_aware_sleep)


def build_for_flags(spec: WorkloadSpec) -> Workload:
    """The spec's workload, an error naming the flag the user typed."""
    try:
        return spec.build()
    except InputError as err:
        if err.where in {f.name for f in dataclasses.fields(WorkloadSpec)}:
            raise InputError("--" + err.where.replace("_", "-"), err.key, err.problem) \
                from None
        raise


def _devices(spec: str | None) -> list[DeviceProfile]:
    if not spec:
        return []
    names = sorted(shipped_profiles()) if spec == "all" else spec.split(",")
    return [load_profile(n.strip()) for n in names]


def run_workload(args: argparse.Namespace) -> int:
    w = build_for_flags(spec_from_args(args))
    profiles = _devices(args.device)
    costs = [predict_step(p, w, battery_pct=args.battery_pct, temperature_c=args.temperature_c)
             for p in profiles]
    if args.plot:
        if not costs:
            raise InputError("--plot", "", "needs --device to have something to draw")
        from pathlib import Path

        from edgetwin.profiles.plot import plot_step_costs

        plot_step_costs(w, profiles, costs, Path(args.plot))
    if args.json:
        print(json.dumps(workload_json(w, costs, profiles), indent=2))
    else:
        _print_workload(w, costs, args.ops)
    return 0


def workload_json(w: Workload, costs: list[StepCost],
                  profiles: list[DeviceProfile]) -> dict[str, Any]:
    """The workload's figures, and one entry per device (`costs[i]` priced on
    `profiles[i]`) in `devices`: a list however many devices were asked for, empty
    without --device."""
    return {
        "model": w.model.name, "method": to_mapping(w.method), "setup": to_mapping(w.setup),
        "total_params": w.total_params, "trainable_params": w.trainable_params,
        "step_flops": w.step_flops, "elementwise_flops": w.elementwise_flops,
        "upload_bytes": w.payload.upload_bytes, "download_bytes": w.payload.download_bytes,
        "step_upload_bytes": w.step_upload_bytes, "step_download_bytes": w.step_download_bytes,
        "peak_memory_bytes": w.memory.peak_bytes, "memory": w.memory.as_dict(),
        "op_count": len(w.ops),
        "devices": [_cost_json(p, c) for p, c in zip(profiles, costs, strict=True)],
    }


def _cost_json(p: DeviceProfile, c: StepCost) -> dict[str, Any]:
    usable = p.memory.usable_ram_mb  # MiB, as every `_mb` of a profile
    return {"device": c.device, "step_time_s": c.step_time_s, "step_energy_j": c.step_energy_j,
            "fits_in_memory": c.fits_in_memory, "usable_ram_mb": usable,
            "memory_margin_mb": usable - c.peak_memory_bytes / MIB,
            "device_peak_memory_bytes": c.peak_memory_bytes,
            "rss_between_steps_bytes": c.rss_between_steps_bytes,
            "compute_time_s": c.compute_time_s, "storage_time_s": c.storage_time_s,
            "communication_time_s": c.communication_time_s, "sleep_s": c.sleep_s,
            "time_by_kind_s": c.time_by_kind_s}


def _print_workload(w: Workload, costs: list[StepCost], list_ops: bool) -> None:
    from rich.table import Table

    con = _console()
    s, m = w.setup, w.method
    how = "full fine-tuning" if m.kind == "full" else \
        f"LoRA r{m.lora_rank} alpha {m.lora_alpha:g} on {','.join(m.lora_targets)}"
    con.print(f"[bold]{w.model.name}[/] {how}; {s.grad_accum} x {s.batch} x {s.seq} tokens, "
              f"{s.dtype}{f' with {s.autocast} autocast' if s.autocast else ''}, "
              f"{s.optimizer}")
    con.print(f"  parameters   {w.total_params:>15,} total, {w.trainable_params:,} trainable")
    con.print(f"  step FLOPs   {w.step_flops:>15.4g} contraction, "
              f"{w.elementwise_flops:.3g} elementwise, {len(w.ops)} ops")
    con.print(f"  per round    {w.payload.upload_bytes:>15,} B up, "
              f"{w.payload.download_bytes:,} B down ({s.serialization}, "
              f"{w.payload.tensors} tensors)")
    if w.step_upload_bytes:
        con.print(f"  per step     {w.step_upload_bytes:>15,} B activations up, "
                  f"{w.step_download_bytes:,} B gradients down")
    mem = w.memory
    con.print(f"  peak memory  {mem.peak_bytes / MIB:>15,.1f} MiB at {mem.peak_moment}: "
              f"weights {mem.weights_bytes / MIB:,.1f}, grads {mem.gradients_bytes / MIB:,.1f}, "
              f"optimizer {mem.optimizer_state_bytes / MIB:,.1f}, activations "
              f"{mem.activations_bytes / MIB:,.1f}, workspace {mem.workspace_bytes / MIB:,.1f}, "
              f"sharding {mem.sharding_buffers_bytes / MIB:,.1f}")
    if costs:
        t = Table(title="one optimizer step per device", title_justify="left")
        for col in ("device", "step s", "energy J", "peak MiB", "RSS between steps MiB",
                    "fits"):
            t.add_column(col, justify="left" if col == "device" else "right")
        for c in costs:
            t.add_row(c.device, f"{c.step_time_s:,.3f}", f"{c.step_energy_j:,.1f}",
                      f"{c.peak_memory_bytes / MIB:,.0f}",
                      f"{c.rss_between_steps_bytes / MIB:,.0f}",
                      "yes" if c.fits_in_memory else "[red]no[/]")
        con.print(t)
    if list_ops:
        t = Table(title="ops (per occurrence; count = times per step)", title_justify="left")
        for col in ("name", "kind", "phase", "shape", "count", "GFLOP", "MB moved"):
            t.add_column(col)
        for op in w.ops:
            t.add_row(op.name, op.kind, op.phase, "x".join(map(str, op.shape)), str(op.count),
                      f"{op.flops / 1e9:.4g}", f"{op.bytes / 1e6:.4g}")
        con.print(t)


def _console() -> Any:
    """A console that does not wrap at 80 columns when writing to a file or pipe."""

    return out_console()


def run_profiles_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    t = Table(title="shipped device profiles", title_justify="left")
    for col in ("name", "class", "evidence", "modes (NAME@MODE)", "description"):
        t.add_column(col)
    for name, _ in sorted(shipped_profiles().items()):
        p = load_profile(name)
        kinds = sorted({pr.kind for pr in p.provenance.values()})
        modes = ", ".join(f"{m} (default)" if m == p.mode else m for m in p.modes) or "-"
        t.add_row(p.name, p.device_class, ", ".join(kinds), modes, p.description)
    _console().print(t)
    return 0


def run_profiles_show(args: argparse.Namespace) -> int:

    p = load_profile(args.name)
    sys.stdout.write(f"# sha256 {p.sha256}\n")
    sys.stdout.write(dump_yaml(to_mapping(p), width=100))
    return 0


def run_profiles_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgetwin.profiles.device import parse_profile

    p = parse_profile(load_yaml(Path(args.file)), args.file)
    print(f"{args.file}: ok: profile {p.name!r}, sha256 {p.sha256[:16]}")
    return 0
