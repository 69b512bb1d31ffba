"""Reading data files record by record (JSON Lines, JSON, CSV, Parquet), and the dataset layouts (alpaca,
sharegpt, messages, text) as chat messages. Shared by the data probe (advisor/) and training (runner/data.py).

Pure: no torch, transformers or datasets here. A record that cannot be read comes back as a Problem with
its line, so callers can list every bad line instead of stopping at the first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowledge.errors import InputError
from knowledge.ids import LAYOUTS

__all__ = ["GENERAL_SET", "LAYOUTS", "Problem", "Record", "detect_layout", "extract_example", "fact_key",
           "general_passages", "layout_of", "normalized", "open_records", "read_passages", "read_records",
           "to_messages", "tool_calls_text"]

CONTAINERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv",
              ".parquet": "parquet"}


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
            yield number, _parse_line(text, number)


def _parse_json(text: str) -> Any:
    """json.loads, with what it raises besides JSONDecodeError turned into ValueError with a plain message:
    nesting too deep for the parser, integers over Python's digit limit, lone UTF-16 surrogates (which no
    later step can encode)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply (more than about 1,000 levels)") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise ValueError(f"a number too long to read ({str(exc).split(':')[0]})") from None
    if "\\ud" in text.lower():  # a \uD800-\uDFFF escape: check that the strings are valid text
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"a lone UTF-16 surrogate ({text[exc.start:exc.start + 6] or 'escape'}); "
                             "write the character itself or a valid pair") from None
    return value


def _parse_line(text: str, number: int) -> Any:
    try:
        return _parse_json(text)
    except json.JSONDecodeError as exc:
        return Problem("broken_json", f"not valid JSON: {exc.msg} at column {exc.colno}", number)
    except ValueError as exc:
        return Problem("broken_json", f"cannot be read: {exc}", number)


def _json_records(path: Path, note: Callable[[Problem], None]) -> Iterator[Record]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"bytes that are not UTF-8 at line {line}", file=str(path), line=line,
                         hint="re-save the file as UTF-8") from None
    try:
        data = _parse_json(text)
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):
            raise InputError(f"cannot be read: {exc}", file=str(path)) from None
        if path.suffix.lower() == ".jsonl" and "\n" in text.strip():  # JSON Lines whose first line is not an object
            yield from _jsonl_records(path)
            return
        if text.lstrip().startswith("{") and "\n" in text.strip():
            note(Problem("container", "this .json file holds one JSON object per line (JSON Lines); "
                                "it is read as such, but naming it .jsonl avoids surprises", None, "warning"))
            yield from _jsonl_records(path)
            return
        raise InputError(f"not valid JSON: {exc.msg}", file=str(path), line=exc.lineno,
                         hint="fix that line, or write one JSON object per line as .jsonl") from None
    if path.suffix.lower() == ".jsonl":
        note(Problem("container", "this file is one JSON array, not JSON Lines; it is read as JSON, but name it "
                     ".json or write one object per line", None, "warning"))
    if isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list)]
        if len(lists) == 1:  # {"data": [...]} wrappers, common in exported sets
            note(Problem("container", f"the examples were read from the list under key {lists[0]!r}",
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
    batches = pf.iter_batches(batch_size=2048)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as exc:  # a corrupt page: ArrowInvalid, OSError ("Corrupt snappy compressed data")
            raise InputError(f"the Parquet file is damaged after row {number}: {exc}", file=str(path),
                             hint="export it again (or as JSON Lines)") from None
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


def normalized(text: str) -> str:
    """The text with case and runs of whitespace ignored: how duplicates, leaks and facts are compared."""
    return " ".join(text.lower().split())


def fact_key(response: str, group: Any = None) -> str:
    """Which fact a knowledge example teaches: the user's group key (data.group_by) when there is one, else its
    answer: the phrasings of one question share an answer."""
    return f"group:{group}" if group is not None else normalized(response)


def _string(record: dict[str, Any], key: str, optional: bool = False) -> str:
    value = record.get(key)
    if value is None and optional:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be text, got {type(value).__name__}")
    return value


def check_data_file(path: str | Path) -> Path:
    """The path, when it names a regular file that can be read; else InputError saying what it is instead (no
    such file, a symlink loop, a name too long, a folder, a pipe or a device, no permission)."""
    p = Path(path)
    try:
        p.stat()
    except OSError as exc:  # ELOOP (a symlink loop), ENAMETOOLONG, EACCES on a folder above
        if isinstance(exc, FileNotFoundError) and not p.is_symlink():
            raise InputError("no such file", file=str(path), hint="check the path") from None
        raise InputError(f"cannot be opened: {exc.strerror}", file=str(path)) from None
    if p.is_dir():
        raise InputError("is a folder; give a data file", file=str(path), hint=".jsonl, .json, .csv or .parquet")
    if not p.is_file():
        raise InputError("is not a regular file (a pipe or a device)", file=str(path),
                         hint="save the data to a file: .jsonl, .json, .csv or .parquet")
    try:
        with p.open("rb"):
            pass
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror}", file=str(path), hint="check its permissions") from None
    return p


def open_records(path: str | Path, note: Callable[[Problem], None] | None = None) -> tuple[str, Iterator[Record]]:
    """The file's container (jsonl, json, csv, parquet) and its (line, record) pairs, streamed; a record that
    cannot be read comes as a Problem. `note` receives warnings about the file itself (a .jsonl that holds one
    JSON array is read as JSON)."""
    p = check_data_file(path)
    notes = note or (lambda problem: None)
    container = _container(p)
    if container == "jsonl" and _head(p).startswith(b"["):
        container = "json"  # one JSON array (noted when it reads as one), or JSON Lines whose first line is a list
    records = {
        "jsonl": lambda: _jsonl_records(p), "json": lambda: _json_records(p, notes),
        "csv": lambda: _csv_records(p), "parquet": lambda: _parquet_records(p),
    }[container]()
    return container, records


def read_records(path: str | Path) -> Iterator[Record]:
    """(line, record) of every record of a data file; a record that cannot be read comes as a Problem."""
    yield from open_records(path)[1]


def layout_of(record: dict[str, Any], file: str, line: int) -> str:
    """The layout of the first record, from its fields; InputError naming the line when it cannot be told."""
    layout = detect_layout(record)
    if layout is None:
        keys = ", ".join(sorted(record)[:8]) or "none"
        raise InputError(f"cannot tell the layout from the fields of the first example ({keys})",
                         file=file, line=line,
                         hint="use alpaca (instruction, input, output), sharegpt (conversations), "
                              "messages (messages: role, content) or text (text)")
    return layout


def read_passages(path: str | Path, key: str) -> list[str]:
    """The non-empty lines of a text file of passages (the general-ability set); InputError naming `key` when
    it is missing, not a file, not UTF-8 text (a binary file, say) or has fewer than 2 passages."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such text file" if not p.exists() else "is not a file", file=str(p), key=key,
                         hint="a text file with one passage a line, or `builtin`")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text (bytes at offset {exc.start}): a binary file?", file=str(p), key=key,
                         hint="a text file with one passage a line, or `builtin`") from None
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror}", file=str(p), key=key) from None
    passages = [line.strip() for line in text.splitlines() if line.strip()]
    if len(passages) < 2 or "\x00" in text:
        raise InputError("needs at least 2 passages of text, one a line", file=str(p), key=key)
    return passages


#: The built-in general-ability set: passages of general text the tuned model's perplexity is measured on.
GENERAL_SET = Path(__file__).parent / "assets" / "general.txt"


def general_passages(general_set: str) -> list[str]:
    """The passages of evaluation.general_set: `builtin`, or a text file (already resolved against the answers)."""
    return read_passages(GENERAL_SET if general_set in ("builtin", "") else general_set, "evaluation.general_set")
