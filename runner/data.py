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
from runner.records import Problem, fact_key, layout_of, normalized, read_records, to_messages
from runner.rundir import RunDir

__all__ = ["EncodeStats", "PLAIN_HEADERS", "answer_text", "encode_rows", "load_rows", "prepare_splits",
           "prompt_and_reference", "read_split", "read_split_summary", "readable_prompt", "render_segments",
           "split_count", "split_facts"]

PLAIN_HEADERS = {"system": "### System:\n", "user": "### User:\n", "tool": "### Tool:\n",
                 "assistant": "### Assistant:\n"}
#: A hub dataset id (org/name), tried when no local file has that name.
HUB_DATASET = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
#: At most this many unusable records are listed in the error message.
LISTED_PROBLEMS = 5


def load_rows(path: str, layout: str | None, group_by: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Rows as {"messages": [...]} or {"text": ...} (with "group": the value of the `group_by` field when one is
    named), and the layout; InputError naming lines when any record cannot be used (the file must be fixed:
    training on a silently smaller set would mislead)."""
    p = Path(path)
    if not p.exists() and HUB_DATASET.match(path):
        return _hub_rows(path, layout, group_by)
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
        if group_by is not None and record.get(group_by) in (None, ""):
            problems.append(Problem("missing_field", f"no {group_by!r} field, which data.group_by names", number))
            continue
        group = {"group": str(record[group_by])} if group_by is not None else {}
        if messages[0]["role"] == "text":
            if messages[0]["content"].strip():
                rows.append({"text": messages[0]["content"], **group})
            continue
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            problems.append(Problem("empty", "the answer is empty", number))
            continue
        rows.append({"messages": messages, **group})
    if problems:
        listed = "; ".join(f"line {p.line}: {p.message}" for p in problems[:LISTED_PROBLEMS])
        more = f" (and {len(problems) - LISTED_PROBLEMS} more)" if len(problems) > LISTED_PROBLEMS else ""
        raise InputError(f"{len(problems)} example(s) cannot be used: {listed}{more}", file=path,
                         line=problems[0].line, hint=f"fix them; finetune-advisor inspect-data {path} lists all")
    if not rows:
        raise InputError("no examples to train on", file=path, hint="the file needs at least one example")
    assert layout is not None
    return rows, layout


def _hub_rows(name: str, layout: str | None, group_by: str | None) -> tuple[list[dict[str, Any]], str]:
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
        if group_by is not None and record.get(group_by) in (None, ""):
            raise InputError(f"record {i + 1}: no {group_by!r} field, which data.group_by names", file=name)
        group = {"group": str(record[group_by])} if group_by is not None else {}
        rows.append(({"text": messages[0]["content"]} if messages[0]["role"] == "text" else {"messages": messages})
                    | group)
    if layout is None or not rows:
        raise InputError("the dataset is empty", file=name)
    return rows, layout


def split_count(n: int, fraction: float) -> int:
    """How many of n examples a split of this share holds out."""
    return 0 if fraction <= 0 or n < 3 else max(1, round(n * fraction))


def answer_text(row: dict[str, Any]) -> str:
    """The row's last answer (or its text): what a knowledge example teaches."""
    if "text" in row:
        return str(row["text"])
    return str(next(m["content"] for m in reversed(row["messages"]) if m["role"] == "assistant"))


def _fact(row: dict[str, Any]) -> str:
    return fact_key(answer_text(row), row.get("group"))


def _deduplicate(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The rows without exact repeats (case and whitespace ignored), the first kept: a repeat split across train
    and test would test a training example."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        key = normalized(json.dumps(row.get("messages", row.get("text")), ensure_ascii=False, sort_keys=True))
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept, len(rows) - len(kept)


def _hold_out_phrasings(groups: dict[str, list[dict[str, Any]]], k: int) -> list[dict[str, Any]]:
    """Up to k rows taken from facts that have two or more phrasings left, one a fact per pass (so the held-out
    rows cover as many facts as they can), never a fact's last phrasing: every held-out question asks a fact
    that stays in training."""
    taken: list[dict[str, Any]] = []
    while len(taken) < k:
        before = len(taken)
        for rows in groups.values():
            if len(taken) == k:
                break
            if len(rows) >= 2:
                taken.append(rows.pop())
        if len(taken) == before:
            break
    return taken


def prepare_splits(plan: Plan, run: RunDir) -> dict[str, int]:
    """Write data/train.jsonl, validation.jsonl and test.jsonl once (a resumed run reuses them), and
    data/split.json, how they were made.

    Exact duplicates are removed first. For knowledge, examples are grouped by fact (the answer, or the
    data.group_by field) and the held-out examples are other phrasings of facts that stay in training, so the
    test asks what the model was taught in words it did not see. A file with one question per fact has no such
    phrasing: its test then asks facts the model never saw (split.json and the report say so)."""
    names = ("train", "validation", "test")
    if all(run.split(n).exists() for n in names):
        return {n: len(read_split(run, n)) for n in names}
    data = plan.data
    loaded, layout = load_rows(data.path, data.layout, data.group_by)
    validation = load_rows(data.validation_path, data.layout, data.group_by)[0] if data.validation_path else None
    test = load_rows(data.test_path, data.layout, data.group_by)[0] if data.test_path else None
    rows, duplicates = _deduplicate([r | {"source_index": i} for i, r in enumerate(loaded)])
    random.Random(plan.seed).shuffle(rows)
    k_test = 0 if test is not None else split_count(len(rows), data.split["test"])
    k_validation = 0 if validation is not None else split_count(len(rows), data.split["validation"])
    by_fact = plan.goal == "knowledge" and all("messages" in r for r in rows)
    grouped = False
    if by_fact:
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(_fact(row), []).append(row)
        grouped = any(len(g) >= 2 for g in groups.values())
    if grouped:
        held_test = _hold_out_phrasings(groups, k_test)
        held_validation = _hold_out_phrasings(groups, k_validation)
        held = {id(r) for r in held_test + held_validation}
        train = [r for r in rows if id(r) not in held]
    else:  # a random split: no fact has a second phrasing to hold out (or the goal is not knowledge)
        held_test, rest = rows[:k_test], rows[k_test:]
        held_validation, train = rest[:k_validation], rest[k_validation:]
    test = test if test is not None else held_test
    validation = validation if validation is not None else held_validation
    if not train:
        raise InputError("no examples are left for training after the validation and test splits",
                         file=data.path, hint="add examples")
    summary = split_facts(train, test, plan.goal)
    summary.update(examples_read=len(loaded), duplicates_removed=duplicates, train=len(train),
                   validation=len(validation), test=len(test), test_from=data.test_path or "held out of data.path",
                   grouped_by=(f"the field {data.group_by!r}" if data.group_by else "the answer") if by_fact else None,
                   held_out_by_fact=grouped)
    run.data.mkdir(parents=True, exist_ok=True)
    for name, part in zip(names, (train, validation, test), strict=True):
        tmp = run.split(name).with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
        tmp.replace(run.split(name))
    run.split_summary.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    (run.data / "layout.txt").write_text(layout + "\n")
    return {"train": len(train), "validation": len(validation), "test": len(test)}


def split_facts(train: list[dict[str, Any]], test: list[dict[str, Any]], goal: str) -> dict[str, Any]:
    """For knowledge: how many of the test's facts the training data teaches (a test of unseen facts measures
    guessing, not what fine-tuning put in)."""
    if goal != "knowledge":
        return {"test_facts": None, "test_facts_seen_in_training": None}
    trained = {_fact(r) for r in train}
    facts = {_fact(r) for r in test}
    return {"test_facts": len(facts), "test_facts_seen_in_training": len(facts & trained)}


def read_split_summary(run: RunDir) -> dict[str, Any] | None:
    """data/split.json, or None for a run made before it was written."""
    return run.read_json(run.split_summary) if run.split_summary.is_file() else None


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


def readable_prompt(row: dict[str, Any]) -> str:
    """The prompt as a person reads it, without the chat template's markup: each message before the last answer
    with its role ("User: ..."), or, for text rows, the first half."""
    if "text" in row:
        words = row["text"].split(" ")
        return " ".join(words[:max(1, len(words) // 2)])
    messages = row["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages[:last])


@dataclass
class EncodeStats:
    examples: int = 0
    truncated: int = 0
    dropped: int = 0
    """Examples whose answer starts after max_length: nothing left to learn from."""
    tokens: int = 0
    lengths: list[int] = field(default_factory=list)


#: Characters tokenized at first for each token wanted; doubled until enough tokens come out, so no text is
#: tokenized whole before truncation (a 50 MB example costs a prefix, not 50 MB of token ids).
CHARS_PER_TOKEN_BOUND = 8
#: Tokens beyond the cut tokenized too, so that the tokens kept are those of the whole text (the boundary token
#: of a prefix can differ from the whole text's).
MARGIN_TOKENS = 4


def _bounded_ids(tokenizer: Any, text: str, wanted: int, special: bool, end: str = "") -> list[int]:
    """The first `wanted` token ids of `text` + `end` (all of them when shorter), tokenizing only a prefix."""
    size = max(64, (wanted + MARGIN_TOKENS) * CHARS_PER_TOKEN_BOUND)
    while True:
        whole = size >= len(text)
        ids = tokenizer(text + end if whole else text[:size], add_special_tokens=special)["input_ids"]
        if whole or len(ids) >= wanted + MARGIN_TOKENS:
            return list(ids) if whole else list(ids[:wanted])
        size *= 2


def encode_rows(rows: list[dict[str, Any]], tokenizer: Any, max_length: int) -> tuple[list[dict[str, list[int]]],
                                                                                      EncodeStats]:
    """input_ids, attention_mask and labels (-100 on prompt tokens), truncated to max_length."""
    stats = EncodeStats()
    out = []
    for row in rows:
        if "text" in row:
            ids = _bounded_ids(tokenizer, row["text"], max_length + 1, True, tokenizer.eos_token or "")
            labels = list(ids)
        else:
            ids, labels = [], []
            for text, trained in render_segments(row["messages"], tokenizer):
                if not text:
                    continue
                if len(ids) > max_length:  # truncated already: the rest is never trained on
                    break
                piece = _bounded_ids(tokenizer, text, max_length + 1 - len(ids), False)
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
