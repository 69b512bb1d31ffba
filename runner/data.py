"""Training data: read and check the user's file, split it (seeded, saved in the run), tokenize with the
model's chat template (or a plain one), and mask the prompt so only response tokens carry loss.

The plain template, used when the tokenizer has no chat template:

    ### System:\\n{system}\\n\\n   ### User:\\n{user}\\n\\n   ### Tool:\\n{tool}\\n\\n   ### Assistant:\\n{answer}<eos>

Plain-text records ({"text": ...}) are trained on every token, with no template.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.errors import InputError
from runner.plan import Plan
from runner.records import Problem, layout_of, read_records, to_messages
from runner.rundir import RunDir

__all__ = ["EncodeStats", "PLAIN_HEADERS", "encode_rows", "load_rows", "prepare_splits", "prompt_and_reference",
           "read_split", "render_segments"]

PLAIN_HEADERS = {"system": "### System:\n", "user": "### User:\n", "tool": "### Tool:\n",
                 "assistant": "### Assistant:\n"}
#: A hub dataset id (org/name), tried when no local file has that name.
HUB_DATASET = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
#: At most this many unusable records are listed in the error message.
LISTED_PROBLEMS = 5


def load_rows(path: str, layout: str | None) -> tuple[list[dict[str, Any]], str]:
    """Rows as {"messages": [...]} or {"text": ...}, and the layout; InputError naming lines when any
    record cannot be used (the file must be fixed: training on a silently smaller set would mislead)."""
    p = Path(path)
    if not p.exists() and HUB_DATASET.match(path):
        return _hub_rows(path, layout)
    problems: list[Problem] = []
    rows: list[dict[str, Any]] = []
    for number, record in read_records(p):
        if isinstance(record, Problem):
            problems.append(record)
            continue
        if not isinstance(record, dict):
            problems.append(Problem("not_an_object", f"expected a JSON object, got {type(record).__name__}", number))
            continue
        if layout is None:
            layout = layout_of(record, path, number)
        try:
            messages = to_messages(record, layout)
        except ValueError as exc:
            problems.append(Problem("missing_field", str(exc), number))
            continue
        if messages[0]["role"] == "text":
            if messages[0]["content"].strip():
                rows.append({"text": messages[0]["content"]})
            continue
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            problems.append(Problem("empty", "the answer is empty", number))
            continue
        rows.append({"messages": messages})
    if problems:
        listed = "; ".join(f"line {p.line}: {p.message}" for p in problems[:LISTED_PROBLEMS])
        more = f" (and {len(problems) - LISTED_PROBLEMS} more)" if len(problems) > LISTED_PROBLEMS else ""
        raise InputError(f"{len(problems)} example(s) cannot be used: {listed}{more}", file=path,
                         line=problems[0].line, hint=f"fix them; finetune-advisor inspect-data {path} lists all")
    if not rows:
        raise InputError("no examples to train on", file=path, hint="the file needs at least one example")
    assert layout is not None
    return rows, layout


def _hub_rows(name: str, layout: str | None) -> tuple[list[dict[str, Any]], str]:
    try:
        import datasets

        ds = datasets.load_dataset(name, split="train")
    except Exception as exc:  # offline, missing or gated datasets all land here
        raise InputError(f"cannot load the dataset {name!r} from the hub: {str(exc).splitlines()[0]}",
                         key="data.path", hint="download it to a local file and give its path") from None
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(ds):
        layout = layout or layout_of(record, name, i + 1)
        try:
            messages = to_messages(record, layout)
        except ValueError as exc:
            raise InputError(f"record {i + 1}: {exc}", file=name) from None
        rows.append({"text": messages[0]["content"]} if messages[0]["role"] == "text" else {"messages": messages})
    if layout is None or not rows:
        raise InputError("the dataset is empty", file=name)
    return rows, layout


def _split_counts(n: int, fraction: float) -> int:
    return 0 if fraction <= 0 or n < 3 else max(1, round(n * fraction))


def prepare_splits(plan: Plan, run: RunDir) -> dict[str, int]:
    """Write data/train.jsonl, validation.jsonl and test.jsonl once (a resumed run reuses them)."""
    names = ("train", "validation", "test")
    if all(run.split(n).exists() for n in names):
        return {n: len(read_split(run, n)) for n in names}
    data = plan.data
    rows, layout = load_rows(data.path, data.layout)
    validation = load_rows(data.validation_path, data.layout)[0] if data.validation_path else None
    test = load_rows(data.test_path, data.layout)[0] if data.test_path else None
    order = list(range(len(rows)))
    random.Random(plan.seed).shuffle(order)
    shuffled = [rows[i] | {"source_index": i} for i in order]
    if test is None:
        k = _split_counts(len(rows), data.split["test"])
        test, shuffled = shuffled[:k], shuffled[k:]
    if validation is None:
        k = _split_counts(len(rows), data.split["validation"])
        validation, shuffled = shuffled[:k], shuffled[k:]
    if not shuffled:
        raise InputError("no examples are left for training after the validation and test splits",
                         file=data.path, hint="add examples")
    run.data.mkdir(parents=True, exist_ok=True)
    for name, part in zip(names, (shuffled, validation, test), strict=True):
        tmp = run.split(name).with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
        tmp.replace(run.split(name))
    (run.data / "layout.txt").write_text(layout + "\n")
    return {"train": len(shuffled), "validation": len(validation), "test": len(test)}


def read_split(run: RunDir, name: str) -> list[dict[str, Any]]:
    path = run.split(name)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------- templates and tokens

def _has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_segments(messages: list[dict[str, str]], tokenizer: Any) -> list[tuple[str, bool]]:
    """The conversation as (text, trained) pieces: True for the assistant's answers (and their end)."""
    if _has_chat_template(tokenizer):
        segments = _chat_template_segments(messages, tokenizer)
        if segments is not None:
            return segments
    return _plain_segments(messages, tokenizer)


def _chat_template_segments(messages: list[dict[str, str]], tokenizer: Any) -> list[tuple[str, bool]] | None:
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        try:
            prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) \
                if i else ""
            full = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        except Exception:  # a template that rejects this conversation: use the plain one
            return None
        if not prompt.startswith(done) or not full.startswith(prompt):
            return None  # a template that rewrites earlier turns: prefixes do not line up
        segments.append((prompt[len(done):], False))
        segments.append((full[len(prompt):], True))
        done = full
    return segments


def _plain_segments(messages: list[dict[str, str]], tokenizer: Any) -> list[tuple[str, bool]]:
    bos = tokenizer.bos_token or ""
    eos = tokenizer.eos_token or ""
    segments: list[tuple[str, bool]] = [(bos, False)] if bos else []
    for message in messages:
        header = PLAIN_HEADERS.get(message["role"], f"### {message['role'].title()}:\n")
        if message["role"] == "assistant":
            segments.append((header, False))
            segments.append((message["content"] + eos, True))
            segments.append(("\n\n", False))
        else:
            segments.append((header + message["content"] + "\n\n", False))
    return segments


def prompt_and_reference(row: dict[str, Any], tokenizer: Any) -> tuple[str, str]:
    """The generation prompt (everything before the last answer, with the answer header) and the answer.

    The prompt never contains the reference answer. For text rows, the first half is the prompt."""
    if "text" in row:
        words = row["text"].split(" ")
        cut = max(1, len(words) // 2)
        return " ".join(words[:cut]), " ".join(words[cut:])
    messages = row["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    context, reference = messages[:last], messages[last]["content"]
    if _has_chat_template(tokenizer) and context:
        try:
            return tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True), reference
        except Exception:
            pass
    text = "".join(t for t, _ in _plain_segments(context, tokenizer))
    return text + PLAIN_HEADERS["assistant"], reference


@dataclass
class EncodeStats:
    examples: int = 0
    truncated: int = 0
    dropped: int = 0
    """Examples whose answer starts after max_length: nothing left to learn from."""
    tokens: int = 0
    lengths: list[int] = field(default_factory=list)


def encode_rows(rows: list[dict[str, Any]], tokenizer: Any, max_length: int) -> tuple[list[dict[str, list[int]]],
                                                                                      EncodeStats]:
    """input_ids, attention_mask and labels (-100 on prompt tokens), truncated to max_length."""
    stats = EncodeStats()
    out = []
    for row in rows:
        if "text" in row:
            ids = tokenizer(row["text"] + (tokenizer.eos_token or ""), add_special_tokens=True)["input_ids"]
            labels = list(ids)
        else:
            ids, labels = [], []
            for text, trained in render_segments(row["messages"], tokenizer):
                if not text:
                    continue
                piece = tokenizer(text, add_special_tokens=False)["input_ids"]
                ids.extend(piece)
                labels.extend(piece if trained else [-100] * len(piece))
        stats.examples += 1
        if len(ids) > max_length:
            stats.truncated += 1
            ids, labels = ids[:max_length], labels[:max_length]
        if all(label == -100 for label in labels[1:]):
            stats.dropped += 1
            continue
        stats.tokens += len(ids)
        stats.lengths.append(len(ids))
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return out, stats
