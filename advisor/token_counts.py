"""Tokens per example as the training process will count them, without transformers.

The model folder's tokenizer.json is read with `tokenizers` and its chat template rendered with jinja2 (as
transformers renders it: a sandboxed environment, trim_blocks and lstrip_blocks). The conversation is cut into
pieces by runner/data.py's own `render_segments`, the function the training process uses, so the count here is
the length the run trains on (before truncation to max_length)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from knowledge.errors import InputError
from runner.data import render_segments
from runner.records import to_messages

__all__ = ["TokenCounter", "token_counter"]


class _TemplateTokenizer:
    """What render_segments reads from a tokenizer: bos/eos text, the chat template and apply_chat_template."""

    def __init__(self, folder: Path) -> None:
        config = _json(folder / "tokenizer_config.json")
        self.bos_token = _token_text(config.get("bos_token"))
        self.eos_token = _token_text(config.get("eos_token"))
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: the default one
            template = next((t.get("template") for t in template if t.get("name") == "default"), None)
        file = folder / "chat_template.jinja"
        if template is None and file.is_file():
            template = file.read_text(encoding="utf-8")
        self.chat_template = template if isinstance(template, str) else None
        self._compiled: Any = None

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool = False,
                            add_generation_prompt: bool = False) -> str:
        if self._compiled is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message: str) -> None:
                raise ValueError(message)

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = raise_exception
            env.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
            self._compiled = env.from_string(self.chat_template or "")
        return str(self._compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                         bos_token=self.bos_token or "", eos_token=self.eos_token or ""))


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):  # AddedToken written out: {"content": ...}
        value = value.get("content")
    return value if isinstance(value, str) else None


class TokenCounter:
    """count(record, layout): the tokens one record becomes in training (chat template and end token included)."""

    def __init__(self, folder: Path, encode: Callable[[str, bool], int]) -> None:
        self.folder = folder
        self._encode = encode
        self._tokenizer = _TemplateTokenizer(folder)

    def count(self, record: dict[str, Any], layout: str) -> int:
        messages = to_messages(record, layout)
        if layout == "text":  # as encode_rows: the text, the end token, the tokenizer's special tokens
            return self._encode(messages[0]["content"] + (self._tokenizer.eos_token or ""), True)
        return sum(self._encode(text, False) for text, _ in render_segments(messages, self._tokenizer) if text)


def token_counter(source: str | Path) -> TokenCounter:
    """A counter for the tokenizer in `source`: a model folder with tokenizer.json, or the file itself."""
    p = Path(source)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not file.is_file():
        raise InputError("no tokenizer.json there", file=str(source),
                         hint="give a model folder that has tokenizer.json, or the file itself")
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises its own Exception subclass
        raise InputError(f"not a readable tokenizer: {exc}", file=str(file)) from None
    return TokenCounter(file.parent, lambda text, special: len(tok.encode(text, add_special_tokens=special).ids))
