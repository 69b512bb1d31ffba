"""Dataset profiling: layout, counts, lengths, empty and duplicate examples, leakage; problems by line."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.token_counts import token_counter
from knowledge.errors import InputError
from knowledge.ids import LAYOUTS
from runner.records import Problem, check_data_file, extract_example, fact_key, layout_of, normalized, open_records

__all__ = ["DataProfile", "LengthStats", "find_overlap", "probe_file"]

#: An example longer than this (characters) is flagged: it exceeds any practical training length.
VERY_LONG_CHARS = 100_000
#: At most this many problems of one kind are kept with their line numbers; the rest are counted.
PROBLEMS_KEPT_PER_KIND = 50


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
    example_chars: list[int] = field(default_factory=list, repr=False)
    """Characters of each usable example, in file order (prompt and answer)."""
    example_tokens: list[int] = field(default_factory=list, repr=False)
    """Tokens of each usable example as training encodes it (chat template included), with a tokenizer."""
    empty: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_counts: dict[str, int] = field(default_factory=dict)
    """All problems by kind, including those beyond the ones kept with line numbers."""
    prompt_hashes: dict[bytes, int] = field(default_factory=dict, repr=False)
    """Normalised-prompt hash -> first line, for leakage checks between files."""
    facts: int = 0
    """Distinct facts (knowledge): distinct answers, or distinct values of the group field."""
    facts_with_phrasings: int = 0
    """Facts asked by two or more distinct examples: only these can be tested in words training did not use."""
    fact_hashes: set[bytes] = field(default_factory=set, repr=False)
    """The facts' digests, to count a test file's facts that the training file teaches."""

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
            "tokenizer": self.tokenizer, "empty": self.empty, "duplicates": self.duplicates, "facts": self.facts,
            "facts_with_phrasings": self.facts_with_phrasings,
            "problem_counts": self.problem_counts, "problems": [p.to_dict() for p in self.problems],
        }


# --------------------------------------------------------------------------- the probe

def _hash(text: str) -> bytes:
    """A digest of the text with case and runs of whitespace ignored (for duplicates and leakage)."""
    return hashlib.blake2b(normalized(text).encode(), digest_size=16).digest()


def probe_file(path: str | Path, *, layout: str | None = None, tokenizer: str | Path | None = None,
               group_by: str | None = None) -> DataProfile:
    """Profile one dataset file, streaming it. Raises InputError when it cannot be read at all. Facts are
    counted by answer, or by the `group_by` field when one is named (knowledge: data.group_by)."""
    p = check_data_file(path)
    name = str(path)
    if layout is not None and layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}", key="format", hint=f"one of: {', '.join(LAYOUTS)}")
    if p.stat().st_size == 0:
        raise InputError("the file is empty", file=name, hint="it needs one example per line (JSON Lines)")
    profile = DataProfile(file=name, container="", layout=layout)
    profile.container, records = open_records(p, profile.add)

    counter = token_counter(tokenizer) if tokenizer else None
    profile.tokenizer = str(tokenizer) if tokenizer else None
    fields: Counter[str] = Counter()
    seen: dict[bytes, int] = {}
    phrasings: Counter[bytes] = Counter()
    prompt_len, response_len, total_len = [], [], []
    token_len = profile.example_tokens
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
            profile.layout = layout_of(record, name, number)
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
            if group_by is not None and record.get(group_by) in (None, ""):
                profile.add(Problem("missing_field", f"no {group_by!r} field, which data.group_by names", number))
                continue
            phrasings[_hash(fact_key(response, record.get(group_by) if group_by else None))] += 1
        profile.prompt_hashes.setdefault(_hash(prompt or response), number)
        total = len(prompt) + len(response)
        if total > VERY_LONG_CHARS:
            profile.add(Problem("very_long", f"{total:,} characters: far longer than a training sequence; "
                                "it will be truncated, or split it", number, "warning"))
        profile.examples += 1
        prompt_len.append(len(prompt))
        response_len.append(len(response))
        total_len.append(total)
        if counter is not None:
            token_len.append(counter.count(record, profile.layout))
    if profile.records == 0:
        raise InputError("no examples in the file", file=name, hint="it needs one example per line (JSON Lines)")
    profile.field_coverage = {k: round(v / profile.records, 4) for k, v in sorted(fields.items())}
    profile.fact_hashes = set(phrasings)
    profile.facts = len(phrasings)
    profile.facts_with_phrasings = sum(1 for n in phrasings.values() if n >= 2)
    profile.prompt_chars = LengthStats.of(prompt_len)
    profile.response_chars = LengthStats.of(response_len)
    profile.total_chars = LengthStats.of(total_len)
    profile.example_chars = total_len
    profile.total_tokens = LengthStats.of(token_len)
    return profile


def find_overlap(first: DataProfile, second: DataProfile) -> list[Problem]:
    """Examples of `second` whose prompt also appears in `first` (train/test leakage)."""
    hits = sorted(line for digest, line in second.prompt_hashes.items() if digest in first.prompt_hashes)
    if not hits:
        return []
    shown = ", ".join(map(str, hits[:10])) + (" ..." if len(hits) > 10 else "")
    return [Problem("leakage", f"{len(hits)} example(s) of {second.file} have the same prompt as one in "
                    f"{first.file} (lines {shown}): a test set must not contain training examples",
                    hits[0], "error")]
