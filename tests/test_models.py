"""The catalogue against transformers: shapes, parameter counts, config.json round trips."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from edgetwin.common.errors import InputError
from edgetwin.profiles.models import CATALOGUE, load_model
from edgetwin.profiles.modules import layer_linears, linears, total_params

from .conftest import REFERENCE

torch = pytest.importorskip("torch")
from edgetwin.calibration.hf_models import build_model, count_params, hf_config  # noqa: E402
from edgetwin.profiles.method import Method  # noqa: E402

# Totals as transformers counts them for the released checkpoints (unique tensors).
KNOWN_TOTALS = {"gpt2": 124_439_808, "gpt2-medium": 354_823_168,
                "gemma-3-270m": 268_098_176, "gemma-3-1b": 999_885_952,
                "qwen2.5-0.5b": 494_032_768}


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_total_params_match_a_model_built_by_transformers(name: str) -> None:
    arch = CATALOGUE[name]
    model = build_model(arch, Method("full"), device="meta")
    total, trainable = count_params(model)
    assert total == trainable == total_params(arch) == KNOWN_TOTALS[name]


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_each_layers_projections_are_transformers_modules_of_that_layer(name: str) -> None:
    """`layer_linears` (a step's layers read their projections there) holds every entry of
    `linears` once, under its layer and role, each the module of that name in a model built
    by transformers, with its shape."""
    arch = CATALOGUE[name]
    model = build_model(arch, Method("full"), device="meta")
    by_layer = layer_linears(arch)
    assert [lin for layer in by_layer.values() for lin in layer.values()] == list(linears(arch))
    assert sorted(by_layer) == [-1, *range(arch.layers)]
    for layer, roles in by_layer.items():
        for role, lin in roles.items():
            assert (lin.layer, lin.role) == (layer, role)
            assert f".{layer}." in f".{lin.name}." or layer == -1
            weight = model.get_submodule(lin.name).weight
            stored = (lin.in_features, lin.out_features) \
                if arch.family == "gpt2" and role != "lm_head" else \
                (lin.out_features, lin.in_features)
            assert tuple(weight.shape) == stored


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_config_json_written_by_transformers_loads_back(name: str, tmp_path: Path) -> None:
    arch = CATALOGUE[name]
    cfg = hf_config(arch)
    if arch.family != "gpt2":  # hf_config leaves it at transformers' default (gpt2: n_positions)
        cfg.max_position_embeddings = arch.context_length
    cfg.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    expected = dataclasses.replace(arch, name=loaded.name)
    if arch.family != "gpt2":  # sliding windows only matter to attention masks
        loaded = dataclasses.replace(loaded, sliding_window=arch.sliding_window)
    assert loaded == expected


def test_catalogue_matches_the_published_architecture_facts() -> None:
    facts = yaml.safe_load(REFERENCE.read_text())["model_architectures"]
    for name, f in facts.items():
        arch = CATALOGUE[name]
        assert (arch.hidden, arch.layers, arch.heads, arch.kv_heads, arch.head_dim,
                arch.intermediate, arch.vocab, arch.tied_embeddings, arch.act) == (
            f["hidden"], f["layers"], f["heads"], f["kv_heads"], f["head_dim"],
            f["intermediate"], f["vocab"], f["tied_embeddings"], f["act"]), name


def test_llama_config_json_is_decomposed(tmp_path: Path) -> None:
    cfg = {"model_type": "llama", "hidden_size": 512, "intermediate_size": 1376,
           "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
           "vocab_size": 32000, "tie_word_embeddings": False}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    arch = load_model(str(tmp_path / "config.json"))
    model = build_model(arch, Method("full"), device="meta")
    assert count_params(model)[0] == total_params(arch)


def test_unknown_family_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "mamba", "hidden_size": 8}))
    with pytest.raises(InputError) as err:
        load_model(str(path))
    assert str(path) in str(err.value) and "model_type" in str(err.value)
    assert "mamba" in str(err.value)


def test_missing_shape_key_names_it(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64}))
    with pytest.raises(InputError, match="num_attention_heads"):
        load_model(str(path))


def test_unknown_model_name() -> None:
    with pytest.raises(InputError, match="unknown model"):
        load_model("gpt5-nano")
