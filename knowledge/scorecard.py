"""knowledge/scorecard.yaml: the deployment scorecard's weights, the ready threshold, and the monotone rules
that turn each measured input into a score from 1 to 5."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from knowledge.files import read_knowledge
from knowledge.ids import SCORECARD_DIMENSIONS
from knowledge.reader import Reader

__all__ = ["Gates", "Scorecard", "Threshold", "load_scorecard"]


@dataclass(frozen=True)
class Threshold:
    """[threshold, score] pairs: the first threshold the value meets gives the score, otherwise `otherwise`."""

    direction: str
    """at_least (larger is better) or at_most (smaller is better)"""
    steps: list[tuple[float, float]]
    otherwise: float

    def score(self, value: float) -> float:
        for threshold, score in self.steps:
            if (value >= threshold) if self.direction == "at_least" else (value <= threshold):
                return score
        return self.otherwise


@dataclass(frozen=True)
class Gates:
    """What a run must show to be called ready, whatever its weighted total."""
    significant_gain: bool
    min_task_score: float
    max_perplexity_increase: float


@dataclass(frozen=True)
class Scorecard:
    weights: dict[str, float]
    ready_threshold: float
    gates: Gates
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    """dimension -> rule name -> a Threshold or a fixed score"""
    advice: dict[str, str] = field(default_factory=dict)


def _threshold(r: Reader) -> Threshold:
    direction = "at_least" if "at_least" in r.data else "at_most"
    r.only(direction, "else")
    steps = []
    for i, pair in enumerate(r.get(direction, list)):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, (int, float)) for v in pair)):
            r.fail(f"item {i} must be [threshold, score]", direction)
        if not 1 <= pair[1] <= 5:
            r.fail(f"item {i}: a score must lie between 1 and 5", direction)
        steps.append((float(pair[0]), float(pair[1])))
    thresholds = [t for t, _ in steps]
    scores = [s for _, s in steps]
    ordered = thresholds == sorted(thresholds, reverse=direction == "at_least")
    if not ordered or scores != sorted(scores, reverse=True):
        r.fail("thresholds must run from the best to the worst, with scores falling: the rule must be monotone",
               direction)
    otherwise = r.get("else", float)
    if steps and otherwise > scores[-1]:
        r.fail("`else` must not score above the last step", "else")
    return Threshold(direction, steps, otherwise)


@functools.cache
def load_scorecard() -> Scorecard:
    top = read_knowledge("scorecard.yaml", "weights", "ready_threshold", "gates", "rules", "advice")
    w = top.sub("weights", SCORECARD_DIMENSIONS)
    weights = {d: w.get(d, float) for d in SCORECARD_DIMENSIONS}
    if abs(sum(weights.values()) - 1.0) > 1e-9:
        w.fail(f"weights must add up to 1, they add up to {sum(weights.values()):g}")
    threshold = top.get("ready_threshold", float)
    if not 1 <= threshold <= 5:
        top.fail("must lie between 1 and 5", "ready_threshold")
    g = top.sub("gates", ("significant_gain", "min_task_score", "max_perplexity_increase"))
    gates = Gates(g.get("significant_gain", bool), g.get("min_task_score", float),
                  g.get("max_perplexity_increase", float))
    if not 0 <= gates.min_task_score <= 1:
        g.fail("must lie between 0 and 1", "min_task_score")
    rules: dict[str, dict[str, Any]] = {}
    if "rules" in top.data:
        rr = top.sub("rules", SCORECARD_DIMENSIONS)
        for dim in SCORECARD_DIMENSIONS:
            d = rr.sub(dim)
            rules[dim] = {}
            for name, value in d.data.items():
                if isinstance(value, dict):
                    rules[dim][str(name)] = _threshold(d.sub(str(name)))
                elif isinstance(value, (int, float)) and not isinstance(value, bool) and 1 <= value <= 5:
                    rules[dim][str(name)] = float(value)
                else:
                    d.fail("must be a score from 1 to 5 or a threshold rule", str(name))
    advice: dict[str, str] = {}
    if "advice" in top.data:
        ad = top.sub("advice", (*SCORECARD_DIMENSIONS, "inconclusive"))
        advice = {dim: ad.get(dim, str) for dim in (*SCORECARD_DIMENSIONS, "inconclusive")}
    return Scorecard(weights, threshold, gates, rules, advice)
