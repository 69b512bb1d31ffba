"""knowledge/methods.yaml: a card for each method id, and the properties the code asks of a method
(full_model, lora_like, virtual_tokens, ...) derived from the card, never from lists of ids."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from knowledge.files import read_knowledge
from knowledge.ids import RUNNABLE_METHODS

__all__ = ["Incompatibility", "MethodCard", "Serving", "load_methods", "method_card"]


@dataclass(frozen=True)
class Incompatibility:
    feature: str
    why: str


@dataclass(frozen=True)
class Serving:
    vllm_adapter: bool
    mergeable: bool
    merge_note: str


@dataclass(frozen=True)
class MethodCard:
    id: str
    name: str
    runnable: bool
    family: str
    """full | freeze | lora (LoRA, DoRA, QLoRA) | prefix (deep prompts in every layer) | prompt (input prompts) |
    ia3; cards that cannot run yet have families of their own"""
    trains: str
    trainable_share_percent: tuple[float, float]
    strengths: list[str]
    limits: list[str]
    when_to_use: list[str]
    defaults: dict[str, Any]
    incompatibilities: list[Incompatibility]
    serving: Serving
    sources: list[str]
    not_runnable_why: str | None = None
    packable: bool = False
    cpu_note: str | None = None
    """What a user training on a CPU should know about this method (said beside it when the device is a CPU)."""
    """Whether batches may be flattened into one padding-free row (not for prompt-learning methods)."""

    def incompatible_with(self, feature: str) -> Incompatibility | None:
        return next((i for i in self.incompatibilities if i.feature == feature), None)

    def packs(self, packing: bool, batch_size: int) -> bool:
        """Whether a run with these settings trains on padding-free rows: asked for, allowed, and more than one
        example a batch (one example has no padding to save)."""
        return bool(packing) and self.packable and batch_size > 1

    @property
    def full_model(self) -> bool:
        """It trains weights of the model itself: the artifact is a whole model (model/), not an adapter."""
        return self.family in ("full", "freeze")

    @property
    def lora_like(self) -> bool:
        """Low-rank adapters on linear layers (rank, alpha, targets): LoRA, DoRA, QLoRA."""
        return self.family == "lora"

    @property
    def deep_prompts(self) -> bool:
        """Trained key/value prefixes in every layer (prefix tuning, P-Tuning v2)."""
        return self.family == "prefix"

    @property
    def input_prompts(self) -> bool:
        """Trained virtual tokens before the input only (P-Tuning, prompt tuning): sequences grow by them."""
        return self.family == "prompt"

    @property
    def virtual_tokens(self) -> bool:
        """It learns soft prompts (num_virtual_tokens), deep or at the input."""
        return self.deep_prompts or self.input_prompts

    @property
    def quantized(self) -> bool:
        """It trains over a base stored in 4 or 8 bits (QLoRA)."""
        return self.defaults.get("bits") in (4, 8)

    @property
    def mergeable(self) -> bool:
        return self.serving.mergeable


_METHOD_KEYS = ("id", "packable", "name", "runnable", "family", "trains", "trainable_share_percent", "strengths",
                "limits", "when_to_use", "defaults", "incompatibilities", "serving", "sources", "not_runnable_why",
                "cpu_note")
_DEFAULT_KEYS = {"learning_rate": float, "epochs": int, "lora_rank": int, "lora_alpha": int, "lora_dropout": float,
                 "lora_targets": str, "bits": int, "num_virtual_tokens": int, "encoder_hidden_size": int,
                 "freeze_trainable_layers": int}


@functools.cache
def load_methods() -> dict[str, MethodCard]:
    """All method cards by id; runnable ones are exactly RUNNABLE_METHODS."""
    top = read_knowledge("methods.yaml", "methods")
    cards: dict[str, MethodCard] = {}
    for i, raw in enumerate(top.get("methods", list)):
        r = top.item("methods", i, raw, _METHOD_KEYS)
        mid = r.get("id", str)
        if mid in cards:
            r.fail(f"duplicate method id {mid!r}", "id")
        d = r.sub("defaults", tuple(_DEFAULT_KEYS))
        defaults = {k: d.get(k, t) for k, t in _DEFAULT_KEYS.items() if k in d.data}
        incompat = []
        for j, item in enumerate(r.get("incompatibilities", list)):
            ir = r.item("incompatibilities", j, item, ("feature", "why"))
            incompat.append(Incompatibility(ir.get("feature", str), ir.get("why", str)))
        s = r.sub("serving", ("vllm_adapter", "mergeable", "merge_note"))
        runnable = r.get("runnable", bool)
        why_not = r.get("not_runnable_why", str, None)
        if not runnable and not why_not:
            r.fail("a card that is not runnable must say why", "not_runnable_why")
        if runnable and mid not in RUNNABLE_METHODS:
            r.fail(f"{mid!r} is marked runnable but is not a method id of knowledge/ids.py", "runnable")
        cards[mid] = MethodCard(
            id=mid, name=r.get("name", str), runnable=runnable, family=r.get("family", str),
            trains=r.get("trains", str), trainable_share_percent=r.number_range("trainable_share_percent"),
            strengths=r.strings("strengths"), limits=r.strings("limits"), when_to_use=r.strings("when_to_use"),
            defaults=defaults, incompatibilities=incompat,
            serving=Serving(s.get("vllm_adapter", bool), s.get("mergeable", bool), s.get("merge_note", str)),
            sources=r.strings("sources"), not_runnable_why=why_not, packable=r.get("packable", bool),
            cpu_note=r.get("cpu_note", str, None),
        )
    missing = [m for m in RUNNABLE_METHODS if m not in cards or not cards[m].runnable]
    if missing:
        top.fail(f"no runnable card for {', '.join(missing)}", "methods")
    return cards


def method_card(method: str) -> MethodCard:
    """The card of one method id."""
    return load_methods()[method]
