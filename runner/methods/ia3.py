"""IA3: learned vectors that rescale keys, values and the input of the feed-forward down projection."""

from __future__ import annotations

from typing import Any

from runner.methods.registry import register
from runner.methods.targets import modules_with_shapes
from runner.plan import Plan


@register("ia3")
def build_ia3(model: Any, plan: Plan) -> Any:
    from peft import IA3Config, get_peft_model

    attention = modules_with_shapes(plan, {"k", "v"}) or modules_with_shapes(plan, {"qkv"})
    feedforward = modules_with_shapes(plan, {"down"})
    if attention is None or feedforward is None:  # an architecture we do not know: peft's own table
        return get_peft_model(model, IA3Config(task_type="CAUSAL_LM"))
    config = IA3Config(target_modules=attention + feedforward, feedforward_modules=feedforward, task_type="CAUSAL_LM")
    return get_peft_model(model, config)
