"""Prompt-learning methods: prefix tuning (with reparameterisation), P-Tuning v2 (deep prompts, none),
P-Tuning v1 (prompt encoder) and prompt tuning. None of them may use gradient checkpointing."""

from __future__ import annotations

from typing import Any

from runner.methods.registry import register
from runner.plan import Plan


def _no_checkpointing(model: Any) -> None:
    # peft's prefix key/values are not recomputed by checkpointed blocks: make sure it is off,
    # including when a k-bit model was prepared (prepare_model_for_kbit_training turns it on by default)
    if checkpointing_on(model):
        model.gradient_checkpointing_disable()


def checkpointing_on(model: Any) -> bool:
    """Whether activation (gradient) checkpointing is on, under either name transformers has used."""
    name = "is_activation_checkpointing" if hasattr(type(model), "is_activation_checkpointing") \
        else "is_gradient_checkpointing"
    return bool(getattr(model, name, False))


#: The text whose activations start the soft prompts (P-Tuning v2's keys and values, prompt tuning's embeddings).
#: Random starting prompts swamp a real model's attention: on SmolLM2-135M-Instruct, P-Tuning v2's first loss
#: was 13 (the base's about 2) and three epochs left it worse than the base. Starting from real text, as the
#: prefix-tuning paper advises (Li and Liang 2021, section 7.2), the tuned model starts where the base is.
INIT_TEXT = ("You are a helpful assistant. Answer the way the examples you learned from do, in the same format, "
             "style and voice, briefly and correctly.")


@register("prefix")
def build_prefix(model: Any, plan: Plan) -> Any:
    from peft import PrefixTuningConfig, get_peft_model

    _no_checkpointing(model)
    hp = plan.hyperparameters
    projection = plan.method == "prefix"
    extra = {"encoder_hidden_size": hp["encoder_hidden_size"]} if projection and hp.get("encoder_hidden_size") else {}
    config = PrefixTuningConfig(num_virtual_tokens=hp["num_virtual_tokens"], prefix_projection=projection,
                                task_type="CAUSAL_LM", **extra)
    peft_model = get_peft_model(model, config)
    if not projection:  # P-Tuning v2: the prefix starts as the base model's own keys and values for INIT_TEXT
        _init_prefix_from_text(peft_model, plan)
    return peft_model


def _init_prefix_from_text(model: Any, plan: Plan) -> None:
    from peft.tuners.cartridge.utils import initialize_kv_prefix_from_text

    from runner.model import load_tokenizer

    tokenizer = load_tokenizer(plan.model.name_or_path, plan.model.trust_remote_code)
    n = plan.hyperparameters["num_virtual_tokens"]
    text = INIT_TEXT
    while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < n:
        text = f"{text} {INIT_TEXT}"
    initialize_kv_prefix_from_text(model, tokenizer, text=text, use_chat_template=False)


def _build_p_tuning(model: Any, plan: Plan) -> Any:
    from peft import PromptEncoderConfig, get_peft_model

    hp = plan.hyperparameters
    config = PromptEncoderConfig(num_virtual_tokens=hp["num_virtual_tokens"], encoder_reparameterization_type="MLP",
                                 task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _build_prompt_tuning(model: Any, plan: Plan) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

    # the virtual tokens start as the embeddings of INIT_TEXT's tokens (PEFT repeats or cuts it to length)
    config = PromptTuningConfig(num_virtual_tokens=plan.hyperparameters["num_virtual_tokens"],
                                prompt_tuning_init=PromptTuningInit.TEXT, prompt_tuning_init_text=INIT_TEXT,
                                tokenizer_name_or_path=plan.model.name_or_path, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


@register("prompt")
def build_input_prompts(model: Any, plan: Plan) -> Any:
    """Virtual tokens before the input: P-Tuning (through a prompt encoder) or prompt tuning (plain embeddings)."""
    return _build_p_tuning(model, plan) if plan.method == "p_tuning" else _build_prompt_tuning(model, plan)
