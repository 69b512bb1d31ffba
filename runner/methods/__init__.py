"""Method builders, one per family, registered by the family the method's card names (runner/methods/registry.py)."""

from __future__ import annotations

from typing import Any

from runner.methods import full, ia3, lora, prompt  # noqa: F401  (each registers its family's builder)
from runner.methods.registry import BUILDERS
from runner.plan import Plan

__all__ = ["BUILDERS", "apply_method", "trainable_count"]


def apply_method(model: Any, plan: Plan) -> Any:
    """The model prepared for the plan's method (a PeftModel, or the base with chosen weights trainable)."""
    return BUILDERS[plan.card.family](model, plan)


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
