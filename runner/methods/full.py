"""Full fine-tuning (every weight) and freeze tuning (only the last N transformer blocks)."""

from __future__ import annotations

from typing import Any

from runner.methods.registry import register
from runner.plan import Plan


@register("full")
def build_full(model: Any, plan: Plan) -> Any:
    for p in model.parameters():
        p.requires_grad = True
    return model


def transformer_blocks(model: Any) -> Any:
    """The ModuleList of transformer blocks (model.layers, transformer.h, gpt_neox.layers, ...)."""
    import torch

    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n]
    if not lists:
        raise ValueError("cannot find the transformer blocks of this model")
    return lists[0]


@register("freeze")
def build_freeze(model: Any, plan: Plan) -> Any:
    n = plan.hyperparameters.get("freeze_trainable_layers", 2)
    for p in model.parameters():
        p.requires_grad = False
    blocks = transformer_blocks(model)
    for block in list(blocks)[-n:]:
        for p in block.parameters():
            p.requires_grad = True
    return model
