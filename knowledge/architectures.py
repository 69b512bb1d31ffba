"""knowledge/architectures.yaml (model families: block layout and linear module names) and
knowledge/models.yaml (config.json-style shapes of popular hub models, so advice works offline)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from knowledge.files import read_knowledge
from knowledge.ids import MODULE_SHAPES

__all__ = ["Architecture", "Architectures", "BuiltinModel", "LinearModule", "load_architectures", "load_builtin_models",
           "load_model_catalog"]


@dataclass(frozen=True)
class LinearModule:
    name: str
    shape: str


@dataclass(frozen=True)
class Architecture:
    family: str
    model_types: list[str]
    mlp: str
    norm: str
    bias: str
    """none | qkv | all"""
    learned_positions: bool
    modules: list[LinearModule]
    norms_per_block: int = 2


@dataclass(frozen=True)
class Architectures:
    families: dict[str, Architecture]
    default_family: str

    def for_model_type(self, model_type: str | None) -> tuple[Architecture, bool]:
        """The family of `model_type`, and whether it was known (False: the default family is used)."""
        for arch in self.families.values():
            if model_type in arch.model_types:
                return arch, True
        return self.families[self.default_family], False


@functools.cache
def load_architectures() -> Architectures:
    top = read_knowledge("architectures.yaml", "families", "default_family")
    fam = top.sub("families")
    families: dict[str, Architecture] = {}
    for name in fam.data:
        r = fam.sub(str(name), ("model_types", "mlp", "norm", "norms_per_block", "bias", "learned_positions",
                                "modules"))
        modules = []
        for j, m in enumerate(r.get("modules", list)):
            mr = r.item("modules", j, m, ("name", "shape"))
            modules.append(LinearModule(mr.get("name", str), mr.choice("shape", MODULE_SHAPES)))
        families[str(name)] = Architecture(
            family=str(name), model_types=r.strings("model_types"), mlp=r.choice("mlp", ("gated", "plain")),
            norm=r.choice("norm", ("rms", "layer")), bias=r.choice("bias", ("none", "qkv", "all")),
            learned_positions=r.get("learned_positions", bool), modules=modules,
            norms_per_block=r.get("norms_per_block", int, 2))
    default = top.get("default_family", str)
    if default not in families:
        top.fail(f"{default!r} is not a family above", "default_family")
    return Architectures(families, default)


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    """What an answers file writes as model.name_or_path (builtin/...)."""
    hub_id: str
    """The hub model it is a copy of; its shapes are in the catalog."""
    package: str
    """The pip requirement that ships it (installed with --no-deps)."""
    module: str
    gguf_file: str
    licence: str
    note: str
    source: str


@functools.cache
def load_builtin_models() -> dict[str, BuiltinModel]:
    """The models that come with the install, by lower-cased name."""
    top = read_knowledge("models.yaml", "models", "builtin")
    catalog = load_model_catalog()
    out: dict[str, BuiltinModel] = {}
    keys = ("name", "hub_id", "package", "module", "gguf_file", "licence", "note", "source")
    for i, raw in enumerate(top.get("builtin", list, [])):
        r = top.item("builtin", i, raw, keys)
        model = BuiltinModel(**{k: r.get(k, str) for k in keys})
        if not model.name.startswith("builtin/"):
            r.fail("a built-in model's name starts with builtin/", "name")
        if model.hub_id.lower() not in catalog:
            r.fail(f"{model.hub_id!r} is not in the catalog (models)", "hub_id")
        out[model.name.lower()] = model
    return out


@functools.cache
def load_model_catalog() -> dict[str, dict[str, Any]]:
    """config.json-style dicts of popular hub models, by id and by alias."""
    top = read_knowledge("models.yaml", "models", "builtin")
    catalog: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(top.get("models", list)):
        r = top.item("models", i, raw)
        mid = r.get("id", str)
        r.get("model_type", str)
        r.get("vocab_size", int)
        config = {k: v for k, v in raw.items() if k not in ("id", "aliases")}
        config["_name_or_path"] = mid
        for name in [mid, *r.strings("aliases", [])]:
            catalog[name.lower()] = config
    return catalog
