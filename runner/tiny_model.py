"""Tiny language models built locally: a byte-level BPE tokenizer trained on given text, and a small
Llama (or GPT-2) config, saved in HF format and loadable with from_pretrained. Used by the tests and,
pre-trained briefly on the project's own text, as the offline demo's base model."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["build_tiny_model", "CHAT_TEMPLATE"]

#: A small ChatML-style template, so the tiny model exercises the chat-template path like real ones.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_model(path: str | Path, texts: Iterable[str], *, architecture: str = "llama", vocab_size: int = 512,
                     hidden_size: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                     intermediate_size: int = 128, max_positions: int = 512, chat_template: bool = True,
                     seed: int = 0) -> Path:
    """Train a tokenizer on `texts`, build a randomly initialised model, save both to `path`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, PreTrainedTokenizerFast

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", additional_special_tokens=specials[4:])
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    ids: dict[str, Any] = {"bos_token_id": fast.bos_token_id, "eos_token_id": fast.eos_token_id,
                           "pad_token_id": fast.pad_token_id}
    if architecture == "llama":
        config: Any = LlamaConfig(vocab_size=len(fast), hidden_size=hidden_size, intermediate_size=intermediate_size,
                                  num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                                  max_position_embeddings=max_positions, tie_word_embeddings=False, **ids)
    elif architecture == "gpt2":
        config = GPT2Config(vocab_size=len(fast), n_embd=hidden_size, n_layer=layers, n_head=heads,
                            n_positions=max_positions, **ids)
    else:
        raise ValueError(f"unknown architecture {architecture!r}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(out))
    fast.save_pretrained(str(out))
    return out
