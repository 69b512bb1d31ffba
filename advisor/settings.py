"""The settings a method starts from: knowledge/hyperparameters.yaml and the method's card give the learning
rate, epochs, rank, virtual tokens and length; the advised ranges shown beside them; and the warnings for a
method that fits the goal badly or for hand-set values outside those ranges."""

from __future__ import annotations

import math
from typing import Any

from advisor.answers import Answers
from advisor.hardware import Hardware
from advisor.model_profile import ModelProfile
from knowledge import HyperparameterRanges, load_hyperparameters, load_methods

__all__ = ["advised_ranges", "max_length_for", "method_settings", "method_warnings", "override_warnings",
           "precision_for"]


def _epochs(examples: int, ranges: HyperparameterRanges) -> int:
    low, high = ranges.epochs_range
    return max(low, min(high, math.ceil(ranges.target_example_passes / max(1, examples))))


def _lora_rank(goal: str, examples: int, ranges: HyperparameterRanges) -> int:
    rank = ranges.lora_rank_by_goal[goal]
    if examples > ranges.double_rank_above_examples:
        rank *= 2
    elif examples < ranges.halve_rank_below_examples:
        rank //= 2
    low, high = ranges.lora_rank_range
    return max(low, min(high, rank))


def max_length_for(tokens_p99: float | None, model: ModelProfile, ranges: HyperparameterRanges) -> int:
    if tokens_p99 is None:
        length = ranges.max_length_default
    else:
        length = next((c for c in ranges.max_length_candidates if c >= tokens_p99), ranges.max_length_candidates[-1])
    if model.max_positions:
        length = min(length, model.max_positions)
    return length


def method_settings(method: str, goal: str, examples: int, max_length: int, params_b: float) -> dict[str, Any]:
    """The settings a method starts from for this goal, data size, length and model size."""
    ranges = load_hyperparameters()
    card = load_methods()[method]
    hp: dict[str, Any] = {"learning_rate": ranges.learning_rate(method, params_b).default,
                          "epochs": _epochs(examples, ranges)}
    if card.lora_like:
        rank = _lora_rank(goal, examples, ranges)
        hp.update(lora_rank=rank, lora_alpha=int(rank * ranges.alpha_per_rank),
                  lora_dropout=card.defaults.get("lora_dropout", 0.0),
                  lora_targets=card.defaults.get("lora_targets", "all-linear"))
    if card.virtual_tokens:
        hp["num_virtual_tokens"] = card.defaults["num_virtual_tokens"]
        if "encoder_hidden_size" in card.defaults:
            hp["encoder_hidden_size"] = card.defaults["encoder_hidden_size"]
    if method == "freeze":
        hp["freeze_trainable_layers"] = card.defaults["freeze_trainable_layers"]
    hp["max_length"] = max_length
    hp["packing"] = card.packable  # padding-free batches: 1.44x the tokens/s of padded ones (bench/)
    hp["optimizer"] = "adamw"
    hp["bits"] = card.defaults.get("bits")
    return hp


def advised_ranges(method: str, params_b: float) -> dict[str, list[float]]:
    """The advised range beside each hyperparameter (shown by the TUI and in the JSON)."""
    r = load_hyperparameters()
    band = r.learning_rate(method, params_b)
    out: dict[str, list[float]] = {"learning_rate": [band.low, band.high], "epochs": list(r.epochs_range),
                                   "gradient_accumulation": list(r.gradient_accumulation_range)}
    card = load_methods()[method]
    if card.lora_like:
        out["lora_rank"] = list(r.lora_rank_range)
        out["lora_alpha"] = [r.lora_rank_range[0], r.lora_rank_range[1] * 2]
    if card.virtual_tokens:
        out["num_virtual_tokens"] = list(r.num_virtual_tokens_range)
    return out


def method_warnings(method: str, answers: Answers, model: ModelProfile, examples: int) -> list[str]:
    card = load_methods()[method]
    out = []
    if answers.deploy == "edge" and not card.serving.mergeable:
        out.append(f"{method} cannot be merged into the weights, but edge deployment needs one merged model: "
                   "prefer qlora")
    if method == "prompt_tuning" and model.params_b < 10:
        out.append(f"prompt tuning works well only on large models; this one has {model.params_b:.1f}B parameters")
    if card.virtual_tokens and answers.goal in ("knowledge", "reasoning"):
        out.append(f"{method} trains prompts, not weights: it holds little new knowledge; lora is the table's "
                   f"choice for {answers.goal}")
    if method == "full" and examples < 10000:
        out.append(f"full fine-tuning on {examples} examples risks overfitting and forgetting; "
                   "an adapter (lora) is safer below 10000 examples")
    return out


def override_warnings(method: str, overrides: dict[str, Any], hp: dict[str, Any], tokens_p99: float | None,
                      params_b: float) -> list[str]:
    """Warnings for hand-set values outside the advised ranges."""
    out = []
    adv = advised_ranges(method, params_b)
    for key in ("learning_rate", "epochs", "lora_rank", "num_virtual_tokens", "gradient_accumulation"):
        if key in overrides and key in adv:
            low, high = adv[key]
            value = overrides[key]
            if value > high:
                risk = {"learning_rate": "training may diverge or forget general ability",
                        "epochs": "the model may memorise the training set"}.get(key, "more cost for little gain")
                out.append(f"overrides.{key} = {value:g} is above the advised {low:g}-{high:g} for {method}: {risk}")
            elif value < low:
                risk = {"learning_rate": "training may barely move the model",
                        "epochs": "the model may not learn the task"}.get(key, "the model may underfit")
                out.append(f"overrides.{key} = {value:g} is below the advised {low:g}-{high:g} for {method}: {risk}")
    if "lora_alpha" in overrides and "lora_rank" in hp and not hp["lora_rank"] <= overrides["lora_alpha"] <= \
            2 * hp["lora_rank"]:
        out.append(f"overrides.lora_alpha = {overrides['lora_alpha']} is outside 1-2x the rank "
                   f"({hp['lora_rank']}): the update scale alpha/rank changes accordingly")
    if "max_length" in overrides and tokens_p99 and overrides["max_length"] < tokens_p99:
        out.append(f"overrides.max_length = {overrides['max_length']} is shorter than 99% of the examples "
                   f"(about {tokens_p99:.0f} tokens): the longer ones will be truncated")
    return out


def precision_for(method: str, device: str, hardware: Hardware) -> str:
    """The dtype training computes in: on a GPU bf16 (fp16 where it lacks bf16); on the CPU bf16 where it has
    bf16 matrix units (AMX-BF16: about 1.8x faster than fp32, loss within the tolerance of
    tests/test_real_model.py), else fp32. QLoRA on the CPU stays fp32 (bitsandbytes' CPU 4-bit kernels)."""
    if device == "cuda":
        return "fp16" if any(g.supports_bf16 is False for g in hardware.gpus) else "bf16"
    if device == "cpu" and hardware.cpu_bf16 and not load_methods()[method].quantized:
        return "bf16"
    return "fp32"
