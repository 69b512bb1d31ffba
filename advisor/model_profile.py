"""Model shapes from config.json (local folder, hub cache, shipped catalog, or the hub), no weights loaded."""

from __future__ import annotations

import json
import math
import os
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from knowledge import Architecture, load_architectures, load_model_catalog
from knowledge.errors import InputError
from runner.builtin_models import builtin_folder, builtin_model, is_converted

__all__ = ["ModelProfile", "check_model_source", "hub_unreachable", "in_hub_cache", "profile_model",
           "profile_from_config", "profile_from_params"]

_ALL_KINDS = ("q", "k", "v", "o", "qkv", "gate", "up", "gate_up", "down")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$|^[A-Za-z0-9][\w.\-]*$")


@dataclass(frozen=True)
class ModelProfile:
    name: str
    source: str
    """folder | hub-cache | catalog | hub | params_b (shape assumed from the parameter count)."""
    model_type: str | None
    architecture: Architecture
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    ffn_size: int
    vocab_size: int
    tied_embeddings: bool
    max_positions: int | None
    num_experts: int = 1
    experts_per_token: int = 1
    bias_kinds: frozenset[str] = frozenset()
    """Module shape kinds that carry a bias (from the family and config.json)."""
    notes: list[str] = field(default_factory=list)

    # ---- shapes
    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the keys (or values) of one layer: KV heads x head dim."""
        return self.num_kv_heads * self.head_dim

    def module_shape(self, shape: str) -> tuple[int, int]:
        """(in_features, out_features) of one linear module kind."""
        h, f = self.hidden_size, self.ffn_size
        return {
            "q": (h, self.q_dim), "k": (h, self.kv_dim), "v": (h, self.kv_dim), "o": (self.q_dim, h),
            "qkv": (h, self.q_dim + 2 * self.kv_dim), "gate": (h, f), "up": (h, f), "gate_up": (h, 2 * f),
            "down": (f, h),
        }[shape]

    def unique_modules(self) -> list[tuple[str, str, int, int]]:
        """(name, shape kind, in, out) of each linear module kind of one block (one expert's MLP)."""
        return [(m.name, m.shape, *self.module_shape(m.shape)) for m in self.architecture.modules]

    def linear_modules(self) -> list[tuple[str, str, int, int]]:
        """(name, shape kind, in, out) of every linear module of one block (MLP ones once per expert)."""
        out = []
        for name, kind, fin, fout in self.unique_modules():
            repeat = self.num_experts if kind in ("gate", "up", "gate_up", "down") else 1
            out.extend([(name, kind, fin, fout)] * repeat)
        return out

    # ---- parameter counts
    @property
    def block_linear_params(self) -> int:
        """Weights of the linear layers of one block (quantizable); biases excluded."""
        return sum(fin * fout for _, _, fin, fout in self.linear_modules())

    @property
    def block_other_params(self) -> int:
        """Norm weights and biases of one block (kept in 16-bit even when the linears are quantized)."""
        norms = self.architecture.norms_per_block * self.hidden_size * (2 if self.architecture.norm == "layer" else 1)
        biases = sum(fout for _, kind, _, fout in self.linear_modules() if kind in self.bias_kinds)
        return norms + biases

    @property
    def embedding_params(self) -> int:
        """Input embeddings (+ learned positions) + the output head when untied + the final norm."""
        emb = self.vocab_size * self.hidden_size
        if self.architecture.learned_positions and self.max_positions:
            emb += self.max_positions * self.hidden_size
        head = 0 if self.tied_embeddings else self.vocab_size * self.hidden_size
        return emb + head + self.hidden_size * (2 if self.architecture.norm == "layer" else 1)

    @property
    def total_params(self) -> int:
        return self.num_layers * (self.block_linear_params + self.block_other_params) + self.embedding_params

    @property
    def params_b(self) -> float:
        return self.total_params / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "source": self.source, "model_type": self.model_type,
            "family": self.architecture.family, "params": self.total_params, "params_b": round(self.params_b, 3),
            "hidden_size": self.hidden_size, "num_layers": self.num_layers, "num_heads": self.num_heads,
            "num_kv_heads": self.num_kv_heads, "head_dim": self.head_dim, "ffn_size": self.ffn_size,
            "vocab_size": self.vocab_size, "tied_embeddings": self.tied_embeddings,
            "max_positions": self.max_positions, "num_experts": self.num_experts,
            "experts_per_token": self.experts_per_token, "notes": list(self.notes),
        }


def _first(config: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return None


def profile_from_config(config: dict[str, Any], *, name: str, source: str) -> ModelProfile:
    """A profile from a config.json dict. Raises InputError naming the missing key."""
    if isinstance(config.get("text_config"), dict):  # multimodal wrappers: the language model's config
        config = {**config["text_config"], "model_type": config["text_config"].get("model_type")}
    model_type = config.get("model_type")
    arch, known = load_architectures().for_model_type(model_type)
    notes = [] if known else [f"model_type {model_type!r} is not in knowledge/architectures.yaml; "
                              f"profiled as the {arch.family} family"]
    hidden = _first(config, "hidden_size", "n_embd", "d_model")
    layers = _first(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(config, "num_attention_heads", "n_head", "num_heads")
    vocab = config.get("vocab_size")
    for key, value in (("hidden_size", hidden), ("num_hidden_layers", layers), ("num_attention_heads", heads),
                       ("vocab_size", vocab)):
        if not isinstance(value, int) or value <= 0:
            raise InputError(f"config.json has no usable {key}", file=name,
                             hint="is this a decoder language model? set model.params_b to estimate anyway")
    assert isinstance(hidden, int) and isinstance(layers, int) and isinstance(heads, int) and isinstance(vocab, int)
    def count(value: Any, key: str) -> Any:  # an optional shape: absent, or a positive whole number
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"config.json: {key} must be a positive whole number, got {value!r}", file=name,
                             key=key, hint="fix config.json, or set model.params_b to estimate from the size")
        return value

    kv = count(_first(config, "num_key_value_heads", "num_kv_heads", "n_head_kv"), "num_key_value_heads")
    if kv is None and config.get("multi_query"):
        kv = 1
    head_dim = count(config.get("head_dim"), "head_dim") or hidden // heads
    ffn = count(_first(config, "intermediate_size", "n_inner", "ffn_dim"), "intermediate_size") or 4 * hidden
    tied = config.get("tie_word_embeddings")
    if tied is None:  # transformers' PretrainedConfig default
        tied = True
    experts = count(_first(config, "num_local_experts", "num_experts", "n_routed_experts"), "num_experts") or 1
    per_token = count(_first(config, "num_experts_per_tok", "moe_topk"), "num_experts_per_tok") or 1
    if experts > 1:
        ffn = count(_first(config, "moe_intermediate_size", "intermediate_size"), "moe_intermediate_size") or ffn
        notes.append(f"mixture of experts: {experts} experts, {per_token} active per token")
    kinds = {"none": set(), "qkv": {"q", "k", "v", "qkv"}, "all": set(_ALL_KINDS)}[arch.bias]
    if config.get("attention_bias"):
        kinds |= {"q", "k", "v", "qkv", "o"}
    if config.get("mlp_bias"):
        kinds |= {"gate", "up", "gate_up", "down"}
    return ModelProfile(
        name=name, source=source, model_type=model_type, architecture=arch, hidden_size=hidden,
        num_layers=layers, num_heads=heads, num_kv_heads=int(kv or heads), head_dim=int(head_dim),
        ffn_size=int(ffn), vocab_size=vocab, tied_embeddings=bool(tied),
        max_positions=count(_first(config, "max_position_embeddings", "n_positions", "max_sequence_length"),
                            "max_position_embeddings"),
        num_experts=int(experts), experts_per_token=int(per_token), bias_kinds=frozenset(kinds), notes=notes,
    )


def profile_from_params(params_b: float, name: str) -> ModelProfile:
    """A profile for a model known only by its size: the nearest catalog model's shape, layers scaled."""
    catalog = load_model_catalog()
    profiles = {cfg["_name_or_path"]: profile_from_config(cfg, name=cfg["_name_or_path"], source="catalog")
                for cfg in catalog.values()}
    ref_name, ref = min(profiles.items(),
                        key=lambda kv: abs(math.log(kv[1].params_b / params_b)))
    per_layer = ref.block_linear_params + ref.block_other_params
    layers = max(1, round((params_b * 1e9 - ref.embedding_params) / per_layer))
    note = (f"shape assumed: {ref_name}'s ({ref.params_b:.2f}B) with {layers} layers to make "
            f"{params_b:g}B parameters; give a model folder or hub id for exact shapes")
    return replace(ref, name=name, source="params_b", num_layers=layers, notes=[note])


def _hf_cache_config(repo_id: str) -> Path | None:
    home = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface")), "hub")
    snapshots = Path(home) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    found = sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return found[0] if found else None


def tokenizer_folder(location: str) -> Path | None:
    """The folder holding the model's tokenizer.json, when it is on this machine: the model's folder, or the
    newest snapshot in the local hub cache. None otherwise (lengths are then estimated from characters)."""
    path = Path(os.path.expanduser(location))
    if path.is_dir():
        return path if (path / "tokenizer.json").is_file() else None
    if HUB_ID.match(location):
        config = _hf_cache_config(location)
        if config is not None and (config.parent / "tokenizer.json").is_file():
            return config.parent
    return None


def _read_config(path: Path, name: str) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InputError(f"config.json cannot be read: {exc}", file=str(path)) from None
    except RecursionError:
        raise InputError("config.json is nested too deeply to read", file=str(path)) from None
    if not isinstance(config, dict):
        raise InputError("config.json must hold a JSON object", file=str(path))
    return config


def hub_unreachable() -> str | None:
    """Why the model hub cannot be used now (offline mode, no connection), or None when it can."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^\w+://", "", endpoint).split("/")[0]
    try:  # one quick look: huggingface_hub itself retries for about 20 s when offline
        socket.create_connection((host.split(":")[0], int(host.split(":")[1]) if ":" in host else 443),
                                 timeout=2).close()
    except OSError as exc:
        return f"the hub ({host}) cannot be reached: {exc.strerror or exc}"
    return None


def in_hub_cache(repo_id: str) -> bool:
    """Whether the local hub cache holds this model's config (a download happened before)."""
    return _hf_cache_config(repo_id) is not None


def _hub_config(repo_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """config.json from the hub, or (None, why not)."""
    why = hub_unreachable()
    if why:
        return None, why
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None, "huggingface_hub is not installed"
    try:
        path = hf_hub_download(repo_id, "config.json", etag_timeout=5)
    except Exception as exc:  # network errors, missing repos, gated repos: all mean "not from the hub"
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}"
    return _read_config(Path(path), repo_id), None


def profile_model(name_or_path: str, params_b: float | None = None, *, allow_network: bool = True) -> ModelProfile:
    """Shapes for a model: a built-in model, a local folder, then hub cache, shipped catalog, hub, and `params_b`
    as fallback."""
    builtin = builtin_model(name_or_path)
    if builtin is not None:  # its converted folder, or before the first conversion its catalog shapes
        folder = builtin_folder(builtin)
        config = _read_config(folder / "config.json", builtin.name) if is_converted(folder) else \
            load_model_catalog()[builtin.hub_id.lower()]
        return profile_from_config(config, name=builtin.name, source="builtin")
    path = Path(os.path.expanduser(name_or_path))
    looks_local = name_or_path.startswith((".", "/", "~")) or path.exists()
    if looks_local:
        if not path.is_dir():
            raise InputError("no such model folder", file=name_or_path,
                             hint="give a folder with config.json, or a hub id such as Qwen/Qwen2.5-7B-Instruct")
        if not (path / "config.json").is_file():
            raise InputError("the folder has no config.json", file=name_or_path,
                             hint="point to the folder a model was saved in with save_pretrained")
        return profile_from_config(_read_config(path / "config.json", name_or_path), name=name_or_path,
                                   source="folder")
    if not HUB_ID.match(name_or_path):
        raise InputError(f"{name_or_path!r} is neither a folder nor a hub id", key="model.name_or_path",
                         hint="a hub id looks like org/name; a folder must exist")
    cached = _hf_cache_config(name_or_path)
    if cached is not None:
        return profile_from_config(_read_config(cached, name_or_path), name=name_or_path, source="hub-cache")
    catalog = load_model_catalog()
    if name_or_path.lower() in catalog:
        return profile_from_config(catalog[name_or_path.lower()], name=name_or_path, source="catalog")
    why = "network use not allowed"
    if allow_network:
        fetched, why_not = _hub_config(name_or_path)
        if fetched is not None:
            return profile_from_config(fetched, name=name_or_path, source="hub")
        why = why_not or why
    if params_b is not None:
        profile = profile_from_params(params_b, name_or_path)
        return replace(profile, notes=[f"config.json of {name_or_path} could not be fetched ({why})",
                                       *profile.notes])
    raise InputError(f"cannot read the config of {name_or_path!r} ({why})", key="model.name_or_path",
                     hint="download the model to a folder and give its path, or set model.params_b")


def check_model_source(name_or_path: str) -> None:
    """Fail early, with exit 2, for a model that cannot be trained: a hub id that is neither cached nor
    reachable; a local folder with no config, no weights, pickle-only weights, or no tokenizer."""
    path = Path(name_or_path)
    if not path.exists():
        why = None if in_hub_cache(name_or_path) else hub_unreachable()
        if why:
            raise InputError(f"the model is not downloaded here and cannot be fetched ({why})", file=name_or_path,
                             key="model.name_or_path",
                             hint="download it where there is a network (huggingface-cli download NAME --local-dir "
                                  "DIR), copy DIR here, and give its path")
        return
    if not path.is_dir():
        raise InputError("a model must be a folder (save_pretrained) or a hub id", file=name_or_path)
    if not (path / "config.json").is_file():
        raise InputError("the model folder has no config.json", file=name_or_path,
                         hint="point to a folder written by save_pretrained")
    if not any(path.glob("*.safetensors")):
        pickles = list(path.glob("*.bin")) + list(path.glob("*.pt"))
        if pickles:
            raise InputError("the model folder has only pickle weights (.bin); this tool loads safetensors only, "
                             "which cannot run code when loaded", file=name_or_path,
                             hint="convert: model.save_pretrained(folder, safe_serialization=True)")
        raise InputError("the model folder has no weights (*.safetensors)", file=name_or_path,
                         hint="was the download complete? save_pretrained writes model.safetensors")
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        raise InputError("the model folder has no tokenizer", file=name_or_path,
                         hint="save the tokenizer next to the model: tokenizer.save_pretrained(folder)")
