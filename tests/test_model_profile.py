"""Model profiles from config.json: counts checked against transformers, sources in their order, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from advisor.model_profile import profile_from_config, profile_model
from knowledge.errors import InputError
from tests.conftest import TINY_LLAMA, write_model_folder

CONFIGS: dict[str, dict[str, Any]] = {
    "llama": TINY_LLAMA,
    "llama-tied-bias": {**TINY_LLAMA, "tie_word_embeddings": True, "attention_bias": True, "mlp_bias": True},
    "qwen2": {**TINY_LLAMA, "model_type": "qwen2", "tie_word_embeddings": True},
    "mistral": {**TINY_LLAMA, "model_type": "mistral"},
    "gemma2-head-dim": {**TINY_LLAMA, "model_type": "gemma2", "head_dim": 32, "tie_word_embeddings": True},
    "phi3": {**TINY_LLAMA, "model_type": "phi3", "num_key_value_heads": 4, "pad_token_id": 0},
    "gpt2": {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100, "n_positions": 128},
    "gpt_neox": {"model_type": "gpt_neox", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "intermediate_size": 256, "vocab_size": 100, "max_position_embeddings": 128,
                 "tie_word_embeddings": False},
    "opt": {"model_type": "opt", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "ffn_dim": 128, "vocab_size": 100, "max_position_embeddings": 128, "word_embed_proj_dim": 64},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parameter_count_matches_transformers(name: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = CONFIGS[name]
    hf_config = AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    expected = sum(p.numel() for p in model.parameters())
    profile = profile_from_config(config, name=name, source="folder")
    extra = 2 * 64 if name == "opt" else 0  # OPT's learned positions carry 2 extra rows (its offset)
    assert profile.total_params + extra == expected


def test_hand_computed_llama_shapes() -> None:
    p = profile_from_config(TINY_LLAMA, name="tiny", source="folder")
    # h=64, 4 heads of 16, 2 KV heads -> kv width 32, ffn 128, 2 layers, vocab 100, untied
    assert (p.q_dim, p.kv_dim, p.head_dim) == (64, 32, 16)
    block = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128
    assert p.block_linear_params == block and p.block_other_params == 2 * 64
    assert p.total_params == 2 * (block + 128) + 2 * 100 * 64 + 64


def test_a_local_folder_is_read_without_loading_weights(tiny_llama_dir: Path) -> None:
    p = profile_model(str(tiny_llama_dir))
    assert p.source == "folder" and p.num_layers == 2 and p.max_positions == 256


def test_the_hub_cache_is_used_before_the_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = tmp_path / "models--Qwen--Qwen2.5-7B-Instruct" / "snapshots" / "abc123"
    write_model_folder(snapshot, {**TINY_LLAMA, "model_type": "qwen2"})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    p = profile_model("Qwen/Qwen2.5-7B-Instruct")
    assert p.source == "hub-cache" and p.hidden_size == 64


def test_the_catalog_answers_offline_for_popular_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    p = profile_model("meta-llama/Llama-3.2-3B-Instruct")
    assert p.source == "catalog" and round(p.params_b, 2) == 3.21
    assert profile_model("qwen/qwen2.5-7b-instruct").total_params == 7_615_616_512  # published count


def test_params_b_is_the_fallback_when_the_config_cannot_be_read(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    p = profile_model("someone/private-13b", params_b=13)
    assert p.source == "params_b" and abs(p.params_b - 13) / 13 < 0.02
    assert any("could not be fetched" in n for n in p.notes) and any("shape assumed" in n for n in p.notes)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("someone/private-13b", "cannot read the config"),
        ("./no/such/folder", "no such model folder"),
        ("not a model id!", "neither a folder nor a hub id"),
    ],
)
def test_models_that_cannot_be_profiled(name: str, message: str, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(InputError, match=message):
        profile_model(name)


def test_folder_problems(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no config.json"):
        profile_model(str(tmp_path / "empty"))
    bad = write_model_folder(tmp_path / "bad", {"model_type": "llama"})
    with pytest.raises(InputError, match="no usable hidden_size"):
        profile_model(str(bad))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="config.json cannot be read"):
        profile_model(str(tmp_path / "broken"))


def test_an_unknown_architecture_is_profiled_as_the_default_family_and_says_so() -> None:
    p = profile_from_config({**TINY_LLAMA, "model_type": "brand_new_arch"}, name="x", source="folder")
    assert p.architecture.family == "llama" and "not in knowledge/architectures.yaml" in p.notes[0]


def test_mixture_of_experts_counts_every_expert() -> None:
    moe = {**TINY_LLAMA, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}
    p = profile_from_config(moe, name="moe", source="folder")
    dense = profile_from_config(TINY_LLAMA, name="dense", source="folder")
    assert p.block_linear_params - dense.block_linear_params == 3 * (3 * 64 * 128)
    assert json.dumps(p.to_dict())  # serialisable
