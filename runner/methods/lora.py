"""LoRA, with DoRA and QLoRA as settings of it (QLoRA: LoRA over the 4-bit or 8-bit base from runner.model)."""

from __future__ import annotations

from typing import Any

from runner.methods.registry import register
from runner.methods.targets import modules_with_shapes
from runner.plan import Plan

ALL_SHAPES = {"q", "k", "v", "o", "qkv", "gate", "up", "gate_up", "down"}


def lora_targets(plan: Plan) -> list[str] | str:
    wanted = plan.hyperparameters.get("lora_targets", "all-linear")
    if wanted in ("all-linear", "all_linear", "all"):
        return modules_with_shapes(plan, ALL_SHAPES) or "all-linear"
    return [t.strip() for t in str(wanted).split(",") if t.strip()]


@register("lora")
def build_lora(model: Any, plan: Plan) -> Any:
    from peft import LoraConfig, get_peft_model

    hp = plan.hyperparameters
    config = LoraConfig(
        r=hp["lora_rank"], lora_alpha=hp["lora_alpha"], lora_dropout=hp.get("lora_dropout", 0.0),
        target_modules=lora_targets(plan), use_dora=plan.method == "dora", bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)
