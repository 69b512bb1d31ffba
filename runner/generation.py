"""What evaluation measures with a model: greedy outputs that stop at the model's own end tokens, with every
decoding setting stated (none taken silently from the model's generation config); token losses on reference
text; and generation speed, timed with repeats in alternating order so that drift and noise show.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

__all__ = ["SPEED_PROMPTS", "SPEED_ROUNDS", "SPEED_TOKENS", "Timed", "decoding", "dtype_note", "generate_all", "plain",
           "speed_ratio", "text_losses", "time_speeds"]

GEN_BATCH = 8
#: Speed is timed on this many prompts, generating exactly this many new tokens with every model (timing the
#: models' own outputs would favour whichever talks longer), in this many rounds, the order rotated each round.
SPEED_PROMPTS, SPEED_TOKENS, SPEED_ROUNDS = 8, 32, 3


def _end_tokens(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end an answer: the generation config's end tokens (an end-of-turn token, say) and the
    tokenizer's end-of-sequence token."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, (list, tuple)):
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


#: Why evaluation generates in the weights' dtype (fp32 on the CPU) even when training computed in bf16:
#: measured on SmolLM2-135M-Instruct (40 demo prompts, greedy, 48 new tokens, AVX512-BF16 and AMX, 2 threads),
#: bf16 autocast changed 13 of the 40 outputs and generated 1.3x slower (74 s against 56 s) at batch 1.
CPU_FP32_GENERATION = ("generation stays in fp32 on the CPU: under bf16 autocast 13 of 40 greedy outputs "
                       "changed and generation was 1.3x slower (SmolLM2-135M-Instruct, measured)")


def decoding(model: Any, tokenizer: Any, max_new_tokens: int, seed: int,
             trained_in: str | None = None) -> dict[str, Any]:
    """Every setting the evaluation generates with, as the report records it: the dtype too, and why it
    differs from the one training computed in (`trained_in`), when it does."""
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    return {"strategy": "greedy", "do_sample": False, "num_beams": 1, "temperature": None, "top_p": None,
            "top_k": None, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "max_new_tokens": max_new_tokens,
            "end_token_ids": _end_tokens(model, tokenizer), "pad_token_id": tokenizer.pad_token_id, "seed": seed,
            "dtype": dtype, "dtype_note": dtype_note(dtype, trained_in)}


def dtype_note(dtype: str, trained_in: str | None) -> str | None:
    """Why generation runs in another dtype than training computed in, when it does."""
    return CPU_FP32_GENERATION if trained_in == "bfloat16" and dtype == "float32" else None


def _config(settings: dict[str, Any], **changes: Any) -> Any:
    from transformers import GenerationConfig

    values = {k: settings[k] for k in ("do_sample", "num_beams", "temperature", "top_p", "top_k",
                                       "repetition_penalty", "no_repeat_ngram_size", "max_new_tokens",
                                       "pad_token_id")}
    # use_cache stays on: Llama-family models with prefix tuning fail in generate(use_cache=False)
    return GenerationConfig(**{**values, "eos_token_id": settings["end_token_ids"], "use_cache": True, **changes})


def _batches(tokenizer: Any, prompts: list[str], device: str) -> Iterator[dict[str, Any]]:
    tokenizer.padding_side = "left"
    try:
        for i in range(0, len(prompts), GEN_BATCH):
            batch = tokenizer(prompts[i: i + GEN_BATCH], return_tensors="pt", padding=True, add_special_tokens=False)
            yield {k: v.to(device) for k, v in batch.items()}
    finally:
        tokenizer.padding_side = "right"


def generate_all(model: Any, tokenizer: Any, prompts: list[str], settings: dict[str, Any],
                 device: str) -> tuple[list[str], dict[str, float]]:
    """The outputs for every prompt, each cut at its first end token; and the timing."""
    import torch

    config = _config(settings)
    ends = set(settings["end_token_ids"])
    outputs: list[str] = []
    generated = 0
    started = time.perf_counter()
    for batch in _batches(tokenizer, prompts, device):
        with torch.no_grad():
            out = model.generate(**batch, generation_config=config)
        for row in out[:, batch["input_ids"].shape[1]:]:
            ids = row.tolist()
            cut = next((i for i, t in enumerate(ids) if t in ends), len(ids))
            ids = ids[:cut]
            generated += len(ids)
            outputs.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    seconds = time.perf_counter() - started
    return outputs, {"seconds": round(seconds, 3), "generated_tokens": generated,
                     "tokens_per_s": round(generated / max(seconds, 1e-9), 2),
                     "latency_s_per_example": round(seconds / max(len(prompts), 1), 4)}


def text_losses(model: Any, tokenizer: Any, texts: list[str], device: str) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, predicted tokens) of each reference text: perplexity is computed from
    these token-weighted, and their per-text means are what the paired test compares."""
    import torch

    out = []
    for text in texts:
        ids = tokenizer(text, return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            mean = float(model(input_ids=ids, labels=ids).loss)
        predicted = ids.shape[1] - 1
        out.append((mean * predicted, predicted))
    return out


Timed = tuple[Any, Callable[[], AbstractContextManager[Any]]]
"""A model and the context it is timed in (nullcontext, the adapter disabled, the adapter merged, ...)."""


def time_speeds(tokenizer: Any, prompts: list[str], device: str, settings: dict[str, Any],
                variants: Mapping[str, Timed], rounds: int = SPEED_ROUNDS) -> dict[str, dict[str, Any]]:
    """Tokens/s of each variant, timed `rounds` times in alternating order (the order rotates each round) on the
    same prompts, each making exactly SPEED_TOKENS new tokens; the median, and the lowest and highest round."""
    import torch

    batch = next(_batches(tokenizer, prompts[:SPEED_PROMPTS], device))
    n = batch["input_ids"].shape[0]
    config = _config(settings, max_new_tokens=SPEED_TOKENS, min_new_tokens=SPEED_TOKENS)
    warm = _config(settings, max_new_tokens=2, min_new_tokens=2)
    names = list(variants)
    rates: dict[str, list[float]] = {name: [] for name in names}
    with torch.no_grad():
        for name in names:  # warm-up: the first call of a model pays for lazy initialisation
            model, context = variants[name]
            with context():
                model.generate(**batch, generation_config=warm)
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                model, context = variants[name]
                with context():
                    started = time.perf_counter()
                    model.generate(**batch, generation_config=config)
                    rates[name].append(n * SPEED_TOKENS / max(time.perf_counter() - started, 1e-9))
    return {name: {"tokens_per_s": round(statistics.median(r), 2), "lowest": round(min(r), 2),
                   "highest": round(max(r), 2), "rounds": len(r), "prompts": n, "new_tokens_each": SPEED_TOKENS}
            for name, r in rates.items()}


def plain(model: Any) -> Timed:
    """A model timed as it is."""
    return model, nullcontext


def speed_ratio(served: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """served / base tokens/s, with the range the rounds allow; `measured_difference` is False when that range
    holds 1 (the two are not told apart by this timing), and then the ratio the scorecard uses is 1."""
    ratio = served["tokens_per_s"] / base["tokens_per_s"]
    low, high = served["lowest"] / base["highest"], served["highest"] / base["lowest"]
    different = not (low <= 1.0 <= high)
    return {"ratio": round(ratio, 3), "range": [round(low, 3), round(high, 3)], "measured_difference": different,
            "scored_ratio": round(ratio, 3) if different else 1.0}
