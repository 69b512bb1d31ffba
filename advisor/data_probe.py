"""Dataset profiling: layout, counts, lengths, empty and duplicate examples, leakage; problems by line."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import InputError

__all__ = ["DataProfile", "LengthStats", "Problem", "LAYOUTS", "detect_layout", "extract_example", "find_overlap",
           "probe_file", "read_records", "to_messages", "tool_calls_text"]

LAYOUTS = ("alpaca", "sharegpt", "messages", "text")
CONTAINERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv",
              ".parquet": "parquet"}
#: An example longer than this (characters) is flagged: it exceeds any practical training length.
VERY_LONG_CHARS = 100_000
#: At most this many problems of one kind are kept with their line numbers; the rest are counted.
PROBLEMS_KEPT_PER_KIND = 50


@dataclass(frozen=True)
class Problem:
    kind: str
    """broken_json | not_utf8 | not_an_object | missing_field | bad_field | empty | duplicate | very_long |
    layout | leakage | container"""
    message: str
    line: int | None = None
    """1-based line (JSONL, CSV), or 1-based record number (JSON arrays, Parquet rows)."""
    severity: str = "error"
    """error: the example cannot be used; warning: it can, but look at it."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "line": self.line, "severity": self.severity, "message": self.message}


@dataclass(frozen=True)
class LengthStats:
    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: int

    @staticmethod
    def of(values: list[int]) -> LengthStats | None:
        if not values:
            return None
        s = sorted(values)

        def pct(q: float) -> float:  # nearest-rank percentile
            return float(s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))])

        return LengthStats(len(s), round(sum(s) / len(s), 1), pct(0.50), pct(0.95), pct(0.99), s[-1])


@dataclass
class DataProfile:
    file: str
    container: str
    layout: str | None
    records: int = 0
    """Records read (lines with content, array items or rows)."""
    examples: int = 0
    """Usable examples: parsed, with the layout's fields, not empty."""
    field_coverage: dict[str, float] = field(default_factory=dict)
    """Share of records that have each top-level field."""
    prompt_chars: LengthStats | None = None
    response_chars: LengthStats | None = None
    total_chars: LengthStats | None = None
    total_tokens: LengthStats | None = None
    tokenizer: str | None = None
    empty: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_counts: dict[str, int] = field(default_factory=dict)
    """All problems by kind, including those beyond the ones kept with line numbers."""
    prompt_hashes: dict[bytes, int] = field(default_factory=dict, repr=False)
    """Normalised-prompt hash -> first line, for leakage checks between files."""

    def add(self, problem: Problem) -> None:
        n = self.problem_counts.get(problem.kind, 0)
        self.problem_counts[problem.kind] = n + 1
        if n < PROBLEMS_KEPT_PER_KIND:
            self.problems.append(problem)

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity == "error")

    def to_dict(self) -> dict[str, Any]:
        def stats(s: LengthStats | None) -> dict[str, Any] | None:
            return None if s is None else vars(s).copy()

        return {
            "file": self.file, "container": self.container, "layout": self.layout, "records": self.records,
            "examples": self.examples, "field_coverage": self.field_coverage,
            "prompt_chars": stats(self.prompt_chars), "response_chars": stats(self.response_chars),
            "total_chars": stats(self.total_chars), "total_tokens": stats(self.total_tokens),
            "tokenizer": self.tokenizer, "empty": self.empty, "duplicates": self.duplicates,
            "problem_counts": self.problem_counts, "problems": [p.to_dict() for p in self.problems],
        }


# --------------------------------------------------------------------------- reading records

Record = tuple[int, Any]  # (line or record number, parsed value or a Problem)


#: Magic bytes of files that are not text, with what to do about them.
BINARY_KINDS = {b"\x1f\x8b": "gzip-compressed: decompress it first (gunzip)",
                b"PK\x03\x04": "a zip archive: extract the data file from it",
                b"PAR1": "Parquet: name it .parquet"}


def _head(path: Path) -> bytes:
    """The file's first bytes, without a UTF-8 byte-order mark or leading whitespace."""
    with path.open("rb") as f:
        return f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")


def _container(path: Path) -> str:
    with path.open("rb") as f:
        magic = f.read(4)
    for prefix, what in BINARY_KINDS.items():
        if magic.startswith(prefix) and not (prefix == b"PAR1" and path.suffix.lower() == ".parquet"):
            raise InputError(f"this file is {what}", file=str(path))
    container = CONTAINERS.get(path.suffix.lower())
    if container:
        return container
    head = _head(path)
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    raise InputError(f"unknown file type {path.suffix or '(no extension)'!r}", file=str(path),
                     hint="use .jsonl, .json, .csv or .parquet")


def _jsonl_records(path: Path) -> Iterator[Record]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a BOM from Windows editors
            except UnicodeDecodeError as exc:
                yield number, Problem("not_utf8", f"bytes that are not UTF-8 at column {exc.start + 1}; "
                                      "re-save the file as UTF-8", number)
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, Problem("broken_json", f"not valid JSON: {exc.msg} at column {exc.colno}", number)


def _json_records(path: Path, profile: DataProfile) -> Iterator[Record]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"bytes that are not UTF-8 at line {line}", file=str(path), line=line,
                         hint="re-save the file as UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip().startswith("{") and "\n" in text.strip():
            profile.add(Problem("container", "this .json file holds one JSON object per line (JSON Lines); "
                                "it is read as such, but naming it .jsonl avoids surprises", None, "warning"))
            yield from _jsonl_records(path)
            return
        raise InputError(f"not valid JSON: {exc.msg}", file=str(path), line=exc.lineno,
                         hint="fix that line, or write one JSON object per line as .jsonl") from None
    if isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list)]
        if len(lists) == 1:  # {"data": [...]} wrappers, common in exported sets
            profile.add(Problem("container", f"the examples were read from the list under key {lists[0]!r}",
                                None, "warning"))
            data = data[lists[0]]
        else:
            data = [data]
    if not isinstance(data, list):
        raise InputError("the JSON file must hold a list of examples", file=str(path),
                         hint="write [ {...}, {...} ] or one object per line as .jsonl")
    yield from enumerate(data, start=1)


def _csv_records(path: Path) -> Iterator[Record]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open("rb") as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text, delimiter=delimiter)
        try:
            line = reader.line_num + 1
            for row in reader:
                if None in row:
                    yield line, Problem("bad_field", f"{len(row[None])} more values than the header's columns",
                                        line)
                else:
                    yield line, row
                line = reader.line_num + 1
        except UnicodeDecodeError:
            yield reader.line_num + 1, Problem("not_utf8", "bytes that are not UTF-8; the rest of the file "
                                               "cannot be read: re-save it as UTF-8", reader.line_num + 1)
        except csv.Error as exc:
            yield reader.line_num, Problem("broken_json", f"not valid CSV: {exc}", reader.line_num)


def _parquet_records(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise InputError(f"not a readable Parquet file: {exc}", file=str(path)) from None
    number = 0
    for batch in pf.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            number += 1
            yield number, row


# --------------------------------------------------------------------------- layouts

def detect_layout(record: dict[str, Any]) -> str | None:
    """The layout a record is in, from its fields, or None."""
    if isinstance(record.get("messages"), list):
        return "messages"
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "text" in record:
        return "text"
    return None


_REQUIRED = {"alpaca": ("instruction", "output"), "sharegpt": ("conversations",), "messages": ("messages",),
             "text": ("text",)}


#: sharegpt `from` values and messages `role` values, mapped to the roles chat templates know.
ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
              "chatgpt": "assistant", "function_call": "assistant", "system": "system", "tool": "tool",
              "observation": "tool", "function": "tool", "ipython": "tool"}


def to_messages(record: dict[str, Any], layout: str) -> list[dict[str, str]]:
    """The record as chat messages ({role, content}); `text` records become one assistant message with
    role "text". Raises ValueError naming the missing or bad field."""
    for key in _REQUIRED[layout]:
        if key not in record or record[key] is None:
            raise ValueError(f"missing field {key!r} (the {layout} layout needs {', '.join(_REQUIRED[layout])})")
    if layout == "alpaca":
        parts = [_string(record, "instruction"), _string(record, "input", optional=True)]
        out = []
        if isinstance(record.get("system"), str) and record["system"]:
            out.append({"role": "system", "content": record["system"]})
        out.append({"role": "user", "content": "\n\n".join(p for p in parts if p)})
        out.append({"role": "assistant", "content": _string(record, "output")})
        return out
    if layout == "text":
        return [{"role": "text", "content": _string(record, "text")}]
    turns = record["conversations" if layout == "sharegpt" else "messages"]
    if not isinstance(turns, list):
        raise ValueError(f"field {'conversations' if layout == 'sharegpt' else 'messages'!r} must be a list")
    role_key, text_key = ("from", "value") if layout == "sharegpt" else ("role", "content")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or role_key not in turn:
            raise ValueError(f"turn {i + 1} must be an object with {role_key!r} and {text_key!r}")
        role = ROLE_NAMES.get(str(turn[role_key]).lower())
        if role is None:
            raise ValueError(f"turn {i + 1}: unknown {role_key} {turn[role_key]!r} "
                             f"(use {', '.join(sorted(set(ROLE_NAMES)))})")
        content = turn.get(text_key)
        if content is None and turn.get("tool_calls"):
            content = tool_calls_text(turn["tool_calls"])
        if isinstance(content, list):  # multi-part content: keep the text parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise ValueError(f"turn {i + 1}: {text_key!r} must be a string")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError(f"no assistant turn ({role_key} = assistant or gpt): nothing to learn from")
    return out


def tool_calls_text(calls: Any) -> str:
    """OpenAI-style tool_calls as the JSON text the model learns to write: {"name": ..., "arguments": {...}}."""
    out = []
    for call in calls if isinstance(calls, list) else [calls]:
        fn = call.get("function", call) if isinstance(call, dict) else {}
        args = fn.get("arguments", {}) if isinstance(fn, dict) else {}
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                pass
        out.append({"name": fn.get("name") if isinstance(fn, dict) else None, "arguments": args})
    return json.dumps(out[0] if len(out) == 1 else out, ensure_ascii=False, sort_keys=True)


def extract_example(record: dict[str, Any], layout: str) -> tuple[str, str]:
    """(prompt, response) text of one record; raises ValueError naming the missing or bad field."""
    messages = to_messages(record, layout)
    prompt = [m["content"] for m in messages if m["role"] not in ("assistant", "text")]
    response = [m["content"] for m in messages if m["role"] in ("assistant", "text")]
    return "\n".join(prompt), "\n".join(response)


def _string(record: dict[str, Any], key: str, optional: bool = False) -> str:
    value = record.get(key)
    if value is None and optional:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be text, got {type(value).__name__}")
    return value


def _hash(text: str) -> bytes:
    """A digest of the text with case and runs of whitespace ignored (for duplicates and leakage)."""
    return hashlib.blake2b(" ".join(text.lower().split()).encode(), digest_size=16).digest()


# --------------------------------------------------------------------------- the probe

def probe_file(path: str | Path, *, layout: str | None = None, tokenizer: str | None = None) -> DataProfile:
    """Profile one dataset file, streaming it. Raises InputError when it cannot be read at all."""
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise InputError("no such file", file=name, hint="check the path")
    if p.is_dir():
        raise InputError("is a folder; give a data file", file=name, hint=".jsonl, .json, .csv or .parquet")
    if layout is not None and layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}", key="format", hint=f"one of: {', '.join(LAYOUTS)}")
    if p.stat().st_size == 0:
        raise InputError("the file is empty", file=name, hint="it needs one example per line (JSON Lines)")
    container = _container(p)
    profile = DataProfile(file=name, container=container, layout=layout)
    if container == "jsonl" and _head(p).startswith(b"["):
        profile.add(Problem("container", "this file is one JSON array, not JSON Lines; it is read as "
                            "JSON, but name it .json or write one object per line", None, "warning"))
        container = profile.container = "json"
    records = _records(p, container, profile)

    encode = _tokenizer(tokenizer) if tokenizer else None
    profile.tokenizer = tokenizer
    fields: Counter[str] = Counter()
    seen: dict[bytes, int] = {}
    prompt_len, response_len, total_len, token_len = [], [], [], []
    for number, record in records:
        if isinstance(record, Problem):
            profile.records += 1
            profile.add(record)
            continue
        profile.records += 1
        if not isinstance(record, dict):
            profile.add(Problem("not_an_object", f"each example must be a JSON object, got "
                                f"{type(record).__name__}", number))
            continue
        fields.update(k for k, v in record.items() if v not in (None, ""))
        if profile.layout is None:
            profile.layout = detect_layout(record)
            if profile.layout is None:
                keys = ", ".join(sorted(record)[:8]) or "none"
                raise InputError(f"cannot tell the layout from the fields of the first example ({keys})",
                                 file=name, line=number,
                                 hint="use alpaca (instruction, input, output), sharegpt (conversations), "
                                      "messages (messages: role, content) or text (text)")
        try:
            prompt, response = extract_example(record, profile.layout)
        except ValueError as exc:
            profile.add(Problem("missing_field" if "missing" in str(exc) else "bad_field", str(exc), number))
            continue
        if not response.strip():
            profile.empty += 1
            profile.add(Problem("empty", "the answer is empty: the model would learn to say nothing", number))
            continue
        digest = _hash(prompt + "\x00" + response)
        if digest in seen:
            profile.duplicates += 1
            profile.add(Problem("duplicate", f"same example as line {seen[digest]}", number, "warning"))
        else:
            seen[digest] = number
        profile.prompt_hashes.setdefault(_hash(prompt or response), number)
        total = len(prompt) + len(response)
        if total > VERY_LONG_CHARS:
            profile.add(Problem("very_long", f"{total:,} characters: far longer than a training sequence; "
                                "it will be truncated, or split it", number, "warning"))
        profile.examples += 1
        prompt_len.append(len(prompt))
        response_len.append(len(response))
        total_len.append(total)
        if encode is not None:
            token_len.append(encode(prompt + "\n" + response))
    if profile.records == 0:
        raise InputError("no examples in the file", file=name, hint="it needs one example per line (JSON Lines)")
    profile.field_coverage = {k: round(v / profile.records, 4) for k, v in sorted(fields.items())}
    profile.prompt_chars = LengthStats.of(prompt_len)
    profile.response_chars = LengthStats.of(response_len)
    profile.total_chars = LengthStats.of(total_len)
    profile.total_tokens = LengthStats.of(token_len)
    return profile


def _records(path: Path, container: str, profile: DataProfile) -> Iterator[Record]:
    return {
        "jsonl": lambda: _jsonl_records(path), "json": lambda: _json_records(path, profile),
        "csv": lambda: _csv_records(path), "parquet": lambda: _parquet_records(path),
    }[container]()


def read_records(path: str | Path) -> Iterator[Record]:
    """(line, record) of every record of a data file; a record that cannot be read comes as a Problem."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file" if not p.exists() else "is not a file", file=str(path))
    container = _container(p)
    if container == "jsonl" and _head(p).startswith(b"["):
        container = "json"
    yield from _records(p, container, DataProfile(file=str(path), container=container, layout=None))


def _tokenizer(source: str) -> Any:
    """A function text -> token count, from a tokenizer.json (or a folder with one) via `tokenizers`."""
    p = Path(source)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not file.is_file():
        raise InputError("no tokenizer.json there", file=source,
                         hint="give a model folder that has tokenizer.json, or the file itself")
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises its own Exception subclass
        raise InputError(f"not a readable tokenizer: {exc}", file=str(file)) from None
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


def find_overlap(first: DataProfile, second: DataProfile) -> list[Problem]:
    """Examples of `second` whose prompt also appears in `first` (train/test leakage)."""
    hits = sorted(line for digest, line in second.prompt_hashes.items() if digest in first.prompt_hashes)
    if not hits:
        return []
    shown = ", ".join(map(str, hits[:10])) + (" ..." if len(hits) > 10 else "")
    return [Problem("leakage", f"{len(hits)} example(s) of {second.file} have the same prompt as one in "
                    f"{first.file} (lines {shown}): a test set must not contain training examples",
                    hits[0], "error")]
