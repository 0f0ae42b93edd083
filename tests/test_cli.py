"""The `edgetwin` command as a user runs it: a real process, its output and exit status."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runs import edgetwin

GEMMA_LORA = ["--model", "gemma-3-270m", "--method", "lora", "--lora-rank", "8",
              "--lora-alpha", "32", "--lora-targets", "q_proj,k_proj,v_proj,o_proj",
              "--batch", "8", "--seq", "64"]


def test_workload_json_has_the_documented_keys() -> None:
    out = edgetwin("workload", *GEMMA_LORA, "--serialization", "npy", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["trainable_params"] == 737_280
    assert data["upload_bytes"] == 2_960_640
    for key in ("total_params", "step_flops", "download_bytes", "peak_memory_bytes"):
        assert data[key] > 0
    assert data["devices"] == [] and "step_time_s" not in data


def test_workload_json_with_a_device() -> None:
    out = edgetwin("workload", *GEMMA_LORA, "--device", "hi-nova-9-pro", "--json")
    (data,) = json.loads(out.stdout)["devices"]
    assert 167 <= data["step_time_s"] <= 174.35
    assert data["step_energy_j"] > 0 and data["fits_in_memory"] is True


def test_workload_table_for_all_devices() -> None:
    out = edgetwin("workload", *GEMMA_LORA, "--device", "all")
    assert out.returncode == 0, out.stderr
    assert "hi-nova-9-pro" in out.stdout and "jetson-agx-orin-64gb" in out.stdout
    assert "737,280 trainable" in out.stdout


def test_jetson_batch_8_does_not_fit_but_accumulation_does() -> None:
    """Why EdgeFlowerTune ran its Jetsons at batch 1 x accumulation 8."""
    (big,) = json.loads(edgetwin("workload", *GEMMA_LORA, "--device", "jetson-nano-4gb",
                                 "--json").stdout)["devices"]
    small_args = [a if a != "8" else "1" for a in GEMMA_LORA]
    small_args[small_args.index("--lora-rank") + 1] = "8"
    (small,) = json.loads(edgetwin("workload", *small_args, "--grad-accum", "8", "--device",
                                   "jetson-nano-4gb", "--json").stdout)["devices"]
    assert big["fits_in_memory"] is False and small["fits_in_memory"] is True


BAD_INPUTS = [
    (["--model", "gpt5", "--batch", "1", "--seq", "8"], "--model: gpt5: unknown model"),
    (["--model", "gpt2", "--batch", "1", "--seq", "8", "--device", "pixel-99"],
     "--device: pixel-99: unknown device profile"),
    (["--model", "gpt2", "--batch", "1", "--seq", "8", "--lora-targets", "q_proj"],
     "--lora-targets: 'q_proj' matches no module of gpt2"),
    (["--model", "gpt2", "--batch", "1", "--seq", "8", "--lora-rank", "0"],
     "--lora-rank: must be > 0"),
    (["--model", "gpt2", "--batch", "0", "--seq", "8"], "--batch: must be > 0"),
    (["--model", "gpt2", "--batch", "1", "--seq", "8", "--split-layer", "40"],
     "--split-layer: must be in 0..11 (0: the client runs the embedding only), got 40"),
    (["--model", "gpt2", "--batch", "x", "--seq", "8"], "argument --batch: invalid int value"),
    (["--model", "gpt2", "--batch", "1", "--seq", "4096"],
     "--seq: 4096 tokens is more than gpt2 accepts (context length 1024 positions)"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    out = edgetwin("workload", *args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_config_json_of_an_unknown_family(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "rwkv"}))
    out = edgetwin("workload", "--model", str(path), "--batch", "1", "--seq", "8")
    assert out.returncode == 2
    assert f"{path}: model_type: unknown family 'rwkv'" in out.stderr


def test_profiles_list_show_validate(tmp_path: Path) -> None:
    listed = edgetwin("profiles", "list")
    assert listed.returncode == 0 and "jetson-nano-4gb" in listed.stdout
    shown = edgetwin("profiles", "show", "jetson-nano-4gb")
    assert shown.returncode == 0 and shown.stdout.startswith("# sha256 ")
    path = tmp_path / "nano.yaml"
    path.write_text(shown.stdout)
    ok = edgetwin("profiles", "validate", str(path))
    assert ok.returncode == 0 and "ok" in ok.stdout
    path.write_text(shown.stdout.replace("rtt_ms: 0.5", "rtt_ms: -1"))
    bad = edgetwin("profiles", "validate", str(path))
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"edgetwin: error: {path}: network.rtt_ms: must be >= 0, got -1.0"


def test_a_subcommands_parser_is_built_alone_and_is_the_one_the_whole_line_holds() -> None:
    """`edgetwin NAME ...` builds only NAME's parser (a simulation does not import the
    device agent's server to read its flags); each name is the subcommand its builder
    adds, so the line parses as the whole one would, and an unknown name gets the list."""
    from edgetwin import cli

    def choices(parser: argparse.ArgumentParser) -> list[str]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return list(sub.choices)

    assert choices(cli.build_parser()) == list(cli.COMMANDS)
    for name in cli.COMMANDS:
        assert choices(cli.build_parser([name, "--help"])) == [name]
    for line in (["--version"], ["-h", "simulate"], ["--", "simulate"]):
        assert choices(cli.build_parser(line)) == list(cli.COMMANDS)
    assert choices(cli.build_parser(["no-such-command"])) == list(cli.COMMANDS)
    code = ("import sys; from edgetwin.cli import build_parser; "
            "build_parser(['simulate', 'x.yaml']); "
            "print('edgetwin.hil.agent.server' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "False"
