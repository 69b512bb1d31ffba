"""Per-example scores by goal. Binary metrics give 0 or 1; continuous ones a number in [0, 1].

- exact_match / token_f1: SQuAD normalisation (lower case, no punctuation, no articles a/an/the, single
  spaces); token F1 over the normalised words.
- rouge_l: ROUGE-L F-measure (rouge-score); chrf: sentence chrF (sacrebleu), divided by 100.
- accuracy (reasoning): the final answer is the number after the last "answer is" in the text, or else the
  last number in it; correct when it equals the reference's final answer, read the same way.
- function_call (agent): when the reference is a tool call (JSON {"name", "arguments"}), correct when the
  first JSON object in the output has the same name and arguments; when the reference is plain text,
  correct when the output makes no call. argument_f1: F1 over the (key, value) pairs of the call, with the
  name as one pair; for plain-text references, 1 when no call was made. json_valid: the output holds a
  parseable JSON object (reported for tool-call references).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["BINARY", "METRICS", "final_answer", "parse_call", "score"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def normalize(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def token_f1(prediction: str, reference: str) -> float:
    p, r = normalize(prediction).split(), normalize(reference).split()
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


_ROUGE: Any = None


def rouge_l(prediction: str, reference: str) -> float:
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return float(_ROUGE.score(reference, prediction)["rougeL"].fmeasure)


def chrf(prediction: str, reference: str) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_chrf(prediction, [reference]).score) / 100.0


def final_answer(text: str) -> float | None:
    """The number after the last 'answer is', or else the last number in the text."""
    lowered = text.lower()
    cut = lowered.rfind("answer is")
    numbers = _NUMBER.findall(text[cut:] if cut >= 0 else text)
    if not numbers:
        numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    value = numbers[0] if cut >= 0 and _NUMBER.findall(text[cut:]) else numbers[-1]
    try:
        return float(value.replace(",", ""))
    except ValueError:
        return None


def accuracy(prediction: str, reference: str) -> float:
    want, got = final_answer(reference), final_answer(prediction)
    return float(want is not None and got is not None and abs(want - got) < 1e-9)


def parse_call(text: str) -> dict[str, Any] | None:
    """The first JSON object in the text, if it parses."""
    start = text.find("{")
    while start >= 0:
        depth = 0
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(text[start: i + 1])
                    except json.JSONDecodeError:
                        break
                    return value if isinstance(value, dict) else None
        start = text.find("{", start + 1)
    return None


def _pairs(call: dict[str, Any]) -> set[tuple[str, str]]:
    args = call.get("arguments", {})
    items = args.items() if isinstance(args, dict) else []
    return {("name", json.dumps(call.get("name")))} | {(str(k), json.dumps(v, sort_keys=True)) for k, v in items}


def function_call(prediction: str, reference: str) -> float:
    want, got = parse_call(reference), parse_call(prediction)
    if want is None or "name" not in want:
        return float(got is None or "name" not in got)
    return float(got is not None and got.get("name") == want.get("name") and
                 got.get("arguments") == want.get("arguments"))


def argument_f1(prediction: str, reference: str) -> float:
    want, got = parse_call(reference), parse_call(prediction)
    if want is None or "name" not in want:
        return float(got is None or "name" not in got)
    if got is None:
        return 0.0
    w, g = _pairs(want), _pairs(got)
    common = len(w & g)
    return 0.0 if common == 0 else 2 * common / (len(w) + len(g))


def json_valid(prediction: str, reference: str) -> float:
    return float(parse_call(prediction) is not None)


METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match, "token_f1": token_f1, "rouge_l": rouge_l, "chrf": chrf, "accuracy": accuracy,
    "function_call": function_call, "argument_f1": argument_f1, "json_valid": json_valid,
}
#: Metrics that score 0 or 1 (tested with exact McNemar); the others are continuous.
BINARY = {"exact_match", "accuracy", "function_call", "json_valid"}


def score(metric: str, prediction: str, reference: str) -> float:
    return METRICS[metric](prediction, reference)
