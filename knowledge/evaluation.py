"""knowledge/evaluation.yaml: the metrics of each goal (the first is the primary one) and generation limits."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from knowledge.files import read_knowledge
from knowledge.ids import EVALUATION_METRICS, GOALS

__all__ = ["EvaluationSettings", "load_evaluation"]


@dataclass(frozen=True)
class Power:
    probability: float
    coarsest_gain: float
    coarsest_effect_size: float


@dataclass(frozen=True)
class Pilot:
    """`finetune-advisor pilot`: how many alternatives join the recommended method, the budget each gets, and the
    values a sweep tries (factors of the recommended value)."""

    alternatives: int
    max_steps: int
    max_examples: int
    sweep_factors: dict[str, list[float]]


@dataclass(frozen=True)
class EvaluationSettings:
    metrics_by_goal: dict[str, list[str]]
    max_new_tokens_margin: int
    max_new_tokens_cap: int
    power: Power
    pilot: Pilot

    def primary_metric(self, goal: str, chosen: str | None = None) -> str:
        """The metric the verdict uses: the user's (evaluation.metric), else the goal's first."""
        return chosen if chosen not in (None, "", "auto") else self.metrics_by_goal[goal][0]


@functools.cache
def load_evaluation() -> EvaluationSettings:
    top = read_knowledge("evaluation.yaml", "metrics_by_goal", "power", "max_new_tokens_margin", "max_new_tokens_cap",
                         "pilot")
    m = top.sub("metrics_by_goal", GOALS)
    by_goal = {}
    for goal in GOALS:
        names = m.strings(goal)
        for name in names:
            if name not in EVALUATION_METRICS:
                m.fail(f"{name!r} is not allowed", goal, f"one of: {', '.join(EVALUATION_METRICS)}")
        by_goal[goal] = names
    p = top.sub("power", ("probability", "coarsest_gain", "coarsest_effect_size"))
    power = Power(p.get("probability", float), p.get("coarsest_gain", float), p.get("coarsest_effect_size", float))
    if not 0.5 <= power.probability < 1:
        p.fail("must lie between 0.5 and 1", "probability")
    if not 0 < power.coarsest_gain <= 1:
        p.fail("must lie between 0 and 1", "coarsest_gain")
    if power.coarsest_effect_size <= 0:
        p.fail("must be above 0", "coarsest_effect_size")
    pr = top.sub("pilot", ("alternatives", "max_steps", "max_examples", "sweep_factors"))
    sf = pr.sub("sweep_factors", ("learning_rate", "lora_rank"))
    factors = {key: [float(f) for f in sf.get(key, list)] for key in sf.data}
    for key, values in factors.items():
        if not 2 <= len(values) <= 3 or any(f <= 0 for f in values):
            sf.fail("must be two or three factors above 0", key)
    pilot = Pilot(pr.get("alternatives", int), pr.get("max_steps", int), pr.get("max_examples", int), factors)
    return EvaluationSettings(by_goal, top.get("max_new_tokens_margin", int), top.get("max_new_tokens_cap", int),
                              power, pilot)
