"""knowledge/evaluation.yaml: the metrics of each goal (the first is the primary one) and generation limits."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from knowledge.files import read_knowledge
from knowledge.ids import EVALUATION_METRICS, GOALS

__all__ = ["EvaluationSettings", "load_evaluation"]


@dataclass(frozen=True)
class EvaluationSettings:
    metrics_by_goal: dict[str, list[str]]
    max_new_tokens_margin: int
    max_new_tokens_cap: int


@functools.cache
def load_evaluation() -> EvaluationSettings:
    top = read_knowledge("evaluation.yaml", "metrics_by_goal", "max_new_tokens_margin", "max_new_tokens_cap")
    m = top.sub("metrics_by_goal", GOALS)
    by_goal = {}
    for goal in GOALS:
        names = m.strings(goal)
        for name in names:
            if name not in EVALUATION_METRICS:
                m.fail(f"{name!r} is not allowed", goal, f"one of: {', '.join(EVALUATION_METRICS)}")
        by_goal[goal] = names
    return EvaluationSettings(by_goal, top.get("max_new_tokens_margin", int), top.get("max_new_tokens_cap", int))
