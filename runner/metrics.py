"""Per-example scores by goal. Binary metrics give 0 or 1; continuous ones a number in [0, 1].

- fact_match (knowledge): correct when the answer states the reference's fact. The answer's numbers are
  exactly the reference's, and it has the reference's content words (not function words such as a, the,
  per, of; endings -s, -es, -ed, -ing ignored): all of them when the reference has up to three, at least
  two thirds of them when it has more. So a paraphrase counts and a wrong fact does not:
      reference "25 days per year"        answer "25 days a year"                  -> 1 (exact match: 0)
      reference "25 days per year"        answer "30 days per year"                -> 0 (token F1: 0.75)
      reference "Velmora."                answer "The capital is Velmora."         -> 1
      reference "Velmora."                answer "Orloor."                         -> 0
      reference "Yes, worldwide shipping is available."   answer "Yes, it ships worldwide."  -> 1
  Extra words in the answer are allowed; a different or an extra number is not. Words of the question that the
  reference repeats (its subject) are not required: to "How long is the warranty on the Aurora lamp?", the
  answer "It has a 2-year warranty." matches "The Aurora lamp has a 2-year warranty." (unless those words
  are all the reference says: to "Is it grey or black?", "Grey." still has to say grey).
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
import math
import re
import string
from collections import Counter
from collections.abc import Callable
from typing import Any

from knowledge.ids import BINARY_METRICS

__all__ = ["BINARY", "FUNCTION_WORDS", "METRICS", "fact_match", "final_answer", "parse_call", "score"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def normalize(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


#: Words that carry no fact: a paraphrase may add, drop or swap them ("per year" / "a year" / "each year").
FUNCTION_WORDS = frozenset("""a an the per each every of in on at to for from by with and or is are was were be
been it its this that these those there their our your we you they he she his her as than then so very also just
about into over under within after before about""".split())


def _stem(word: str) -> str:
    """A word without its -ing, -ed, -es or -s ending (ships, shipped, shipping -> ship)."""
    for ending in ("ing", "ed", "es", "s"):
        if len(word) > len(ending) + 2 and word.endswith(ending) and not word.endswith("ss"):
            word = word[: -len(ending)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
                word = word[:-1]  # shipp -> ship
            break
    return word


def _content_words(text: str) -> tuple[set[str], set[float]]:
    """The words that carry the fact (stemmed) and the numbers, of a text."""
    numbers = {float(n.replace(",", "")) for n in _NUMBER.findall(text)}
    words = {_stem(w) for w in normalize(_NUMBER.sub(" ", text)).split() if w not in FUNCTION_WORDS}
    return words, numbers


def fact_match(prediction: str, reference: str, question: str = "") -> float:
    """1 when the prediction states the reference's fact: exactly its numbers, and its content words (all of up
    to three, two thirds of more); words the question already says are not required, unless nothing else is
    left of the reference."""
    want_words, want_numbers = _content_words(reference)
    given = want_words - _content_words(question)[0]
    if given or want_numbers:
        want_words = given
    got_words, got_numbers = _content_words(prediction)
    if not want_words and not want_numbers:
        return exact_match(prediction, reference)
    if got_numbers != want_numbers:
        return 0.0
    found = len(want_words & got_words)
    needed = len(want_words) if len(want_words) <= 3 else math.ceil(2 * len(want_words) / 3)
    return float(found >= needed)


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
    "fact_match": fact_match, "exact_match": exact_match, "token_f1": token_f1, "rouge_l": rouge_l, "chrf": chrf,
    "accuracy": accuracy,
    "function_call": function_call, "argument_f1": argument_f1, "json_valid": json_valid,
}
BINARY = BINARY_METRICS


#: Metrics that read the question too (evaluation passes the prompt).
READS_QUESTION = frozenset({"fact_match"})


def score(metric: str, prediction: str, reference: str, question: str = "") -> float:
    """The metric's score of one output; the question (the prompt) for the metrics that read it."""
    if metric in READS_QUESTION:
        return fact_match(prediction, reference, question)
    return METRICS[metric](prediction, reference)
