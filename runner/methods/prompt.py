"""Prompt-learning methods: prefix tuning (with reparameterisation), P-Tuning v2 (deep prompts, none),
P-Tuning v1 (prompt encoder) and prompt tuning. None of them may use gradient checkpointing."""

from __future__ import annotations

from typing import Any


def _no_checkpointing(model: Any) -> None:
    # peft's prefix key/values are not recomputed by checkpointed blocks: make sure it is off,
    # including when a k-bit model was prepared (prepare_model_for_kbit_training turns it on by default)
    if getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()


def build_prefix(model: Any, plan: dict[str, Any]) -> Any:
    from peft import PrefixTuningConfig, get_peft_model

    _no_checkpointing(model)
    hp = plan["hyperparameters"]
    projection = plan["method"] == "prefix"
    config = PrefixTuningConfig(
        num_virtual_tokens=hp["num_virtual_tokens"], prefix_projection=projection,
        encoder_hidden_size=hp.get("encoder_hidden_size") if projection else None, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def build_p_tuning(model: Any, plan: dict[str, Any]) -> Any:
    from peft import PromptEncoderConfig, get_peft_model

    hp = plan["hyperparameters"]
    config = PromptEncoderConfig(num_virtual_tokens=hp["num_virtual_tokens"], encoder_reparameterization_type="MLP",
                                 task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def build_prompt_tuning(model: Any, plan: dict[str, Any]) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

    config = PromptTuningConfig(num_virtual_tokens=plan["hyperparameters"]["num_virtual_tokens"],
                                prompt_tuning_init=PromptTuningInit.RANDOM, task_type="CAUSAL_LM")
    return get_peft_model(model, config)
