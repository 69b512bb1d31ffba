"""knowledge/architectures.yaml (model families: block layout and linear module names) and
knowledge/models.yaml (config.json-style shapes of popular hub models, so advice works offline)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from knowledge.files import read_knowledge
from knowledge.ids import MODULE_SHAPES

__all__ = ["licence_problem", "Architecture", "Architectures", "BuiltinModel", "Licence", "LinearModule", "ModelChoice",
           "load_architectures", "load_builtin_models", "load_model_catalog", "load_model_choices"]


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
        config = {k: v for k, v in raw.items() if k not in ("id", "aliases", "about")}
        config["_name_or_path"] = mid
        for name in [mid, *r.strings("aliases", [])]:
            catalog[name.lower()] = config
    return catalog


@dataclass(frozen=True)
class Licence:
    name: str
    commercial: bool
    condition: str | None

    def line(self) -> str:
        """The licence in one line: its name, commercial use, and its condition."""
        use = "commercial use allowed" if self.commercial else "no commercial use"
        return f"{self.name}: {use}" + (f" ({self.condition})" if self.condition else "")


@dataclass(frozen=True)
class ModelChoice:
    """A catalog model with what choosing it needs (knowledge/models.yaml, `about`)."""

    id: str
    params_b: float
    context_length: int
    licence: Licence
    chat_template: bool
    good_at: str
    source: str


@functools.cache
def load_model_choices() -> dict[str, ModelChoice]:
    """The catalog models that say what choosing them needs, by lower-cased id and alias."""
    top = read_knowledge("models.yaml", "models", "builtin")
    out: dict[str, ModelChoice] = {}
    for i, raw in enumerate(top.get("models", list)):
        r = top.item("models", i, raw)
        if "about" not in r.data:
            continue
        a = r.sub("about", ("params_b", "context_length", "licence", "chat_template", "good_at", "source"))
        lic = a.sub("licence", ("name", "commercial", "condition"))
        choice = ModelChoice(r.get("id", str), a.get("params_b", float), a.get("context_length", int),
                             Licence(lic.get("name", str), lic.get("commercial", bool),
                                     lic.get("condition", (str, type(None)), None)),
                             a.get("chat_template", bool), a.get("good_at", str), a.get("source", str))
        for name in [choice.id, *r.strings("aliases", [])]:
            out[name.lower()] = choice
    return out


def licence_problem(model_name: str, use: str | None) -> str | None:
    """Why the model's licence does not allow the stated use (answers `use`), or None: it does, the use was not
    stated, or the model's licence is not in the catalog."""
    builtin = load_builtin_models().get(model_name.lower())
    choice = load_model_choices().get((builtin.hub_id if builtin else model_name).lower())
    if choice is None or use != "commercial" or choice.licence.commercial:
        return None
    return (f"{choice.id}'s licence does not allow commercial use ({choice.licence.line()}), and the answers say "
            "use: commercial; choose another base model (finetune-advisor models --commercial lists those that "
            f"fit), or use it for research only (source: {choice.source})")
