"""Method builders, one per family, registered by method id: build(model, plan) -> trainable model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runner.methods.full import build_freeze, build_full
from runner.methods.ia3 import build_ia3
from runner.methods.lora import build_lora
from runner.methods.prompt import build_p_tuning, build_prefix, build_prompt_tuning

__all__ = ["BUILDERS", "apply_method", "trainable_count"]

Builder = Callable[[Any, dict[str, Any]], Any]

BUILDERS: dict[str, Builder] = {
    "lora": build_lora,
    "dora": build_lora,
    "qlora": build_lora,
    "prefix": build_prefix,
    "p_tuning_v2": build_prefix,
    "p_tuning": build_p_tuning,
    "prompt_tuning": build_prompt_tuning,
    "ia3": build_ia3,
    "freeze": build_freeze,
    "full": build_full,
}


def apply_method(model: Any, plan: dict[str, Any]) -> Any:
    """The model prepared for the plan's method (a PeftModel, or the base with chosen weights trainable)."""
    return BUILDERS[plan["method"]](model, plan)


def trainable_count(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters; shared tensors are counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel() * (2 if p.__class__.__name__ == "Params4bit" else 1)  # 4-bit storage packs two per byte
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total
