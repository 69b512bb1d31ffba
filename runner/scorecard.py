"""The deployment scorecard: five dimensions scored 1-5 by the rules in knowledge/scorecard.yaml, from
measured inputs that are shown beside each score; the weighted total, the gates, and the verdict.

Ready to deploy means a weighted total at the threshold or above AND every gate passed: a significant task
gain, a minimum task score, general ability not badly degraded. The verdict names the gates that failed
first, so a model that learned nothing is never described by its total alone."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from knowledge import Threshold, load_scorecard

__all__ = ["ScorecardInputs", "build_scorecard"]


@dataclass(frozen=True)
class ScorecardInputs:
    metric: str
    tuned_metric: float
    base_metric: float
    p_value: float
    ci_low: float
    ci_high: float
    direction: str
    """better | worse | no difference | inconclusive (runner/stats.py direction)"""
    perplexity_increase: float | None
    """tuned / base general-set perplexity - 1; None when it was not measured."""
    throughput_ratio: float | None
    peak_memory_gb: float | None
    available_gb: float | None
    training_hours: float | None
    artifact_gb: float | None
    base_model_gb: float | None
    deployment_kind: str
    """mergeable_and_served_by_vllm | full_model | mergeable | not_mergeable"""


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _gates(i: ScorecardInputs) -> list[dict[str, Any]]:
    """Each gate of knowledge/scorecard.yaml with whether it passed and why."""
    gates = load_scorecard().gates
    out = []
    if gates.significant_gain:
        out.append({"gate": "significant_gain", "passed": i.direction == "better",
                    "detail": {"better": "the task metric is significantly better than the base's",
                               "worse": "the tuned model is significantly worse than the base on your task",
                               "inconclusive": "the test set is too small to show a difference either way",
                               }.get(i.direction, "the tuned model is not significantly better than the base on "
                                                  "your task")})
    out.append({"gate": "min_task_score", "passed": i.tuned_metric >= gates.min_task_score,
                "detail": f"{i.metric} {i.tuned_metric:.3f}, at least {gates.min_task_score:g} needed"})
    if i.perplexity_increase is not None:
        out.append({"gate": "max_perplexity_increase", "passed": i.perplexity_increase <= gates.max_perplexity_increase,
                    "detail": f"general-set perplexity {i.perplexity_increase * 100:+.1f}% against the base, at most "
                              f"{gates.max_perplexity_increase * 100:+.0f}% allowed"})
    return out


def _rule(dimension: str, name: str) -> Any:
    return load_scorecard().rules[dimension][name]


def _task(i: ScorecardInputs) -> tuple[float, dict[str, Any]]:
    shown = {"metric": i.metric, "tuned": round(i.tuned_metric, 4), "base": round(i.base_metric, 4),
             "p_value": i.p_value, "ci": [_round(i.ci_low), _round(i.ci_high)]}
    if i.direction == "better":
        rule: Threshold = _rule("task", "significant_gain")
        return rule.score(i.tuned_metric), {**shown, "finding": "significant gain"}
    if i.direction == "worse":
        return float(_rule("task", "significant_loss")), {**shown, "finding": "significant loss"}
    if i.direction == "inconclusive":
        return float(_rule("task", "inconclusive")), {**shown, "finding": "inconclusive: the test set is too small"}
    return float(_rule("task", "no_significant_difference")), {**shown, "finding": "no significant difference"}


def _general(i: ScorecardInputs) -> tuple[float | None, dict[str, Any]]:
    if i.perplexity_increase is None:
        return None, {"perplexity_increase": None}
    return _rule("general", "perplexity_increase").score(i.perplexity_increase), \
        {"perplexity_increase": round(i.perplexity_increase, 4)}


def _speed(i: ScorecardInputs) -> tuple[float | None, dict[str, Any]]:
    if i.throughput_ratio is None:
        return None, {"throughput_ratio": None}
    return _rule("speed", "throughput_ratio").score(i.throughput_ratio), \
        {"throughput_ratio": round(i.throughput_ratio, 3)}


def _resources(i: ScorecardInputs) -> tuple[float | None, dict[str, Any]]:
    parts: dict[str, float] = {}
    shown: dict[str, Any] = {"peak_memory_gb": i.peak_memory_gb, "available_gb": i.available_gb,
                             "training_hours": i.training_hours, "artifact_gb": i.artifact_gb,
                             "base_model_gb": i.base_model_gb}
    if i.peak_memory_gb is not None and i.available_gb:
        share = i.peak_memory_gb / i.available_gb
        shown["peak_memory_share"] = round(share, 3)
        parts["peak_memory_share"] = _rule("resources", "peak_memory_share").score(share)
    if i.training_hours is not None:
        parts["training_hours"] = _rule("resources", "training_hours").score(i.training_hours)
    if i.artifact_gb is not None and i.base_model_gb:
        share = i.artifact_gb / i.base_model_gb
        shown["artifact_share"] = round(share, 4)
        parts["artifact_share"] = _rule("resources", "artifact_share").score(share)
    if not parts:
        return None, shown
    shown["sub_scores"] = parts
    return round(sum(parts.values()) / len(parts), 2), shown


def build_scorecard(i: ScorecardInputs) -> dict[str, Any]:
    """Scores, the numbers they came from, the weighted total and the verdict."""
    card = load_scorecard()
    dims: dict[str, tuple[float | None, dict[str, Any]]] = {
        "task": _task(i), "general": _general(i), "speed": _speed(i), "resources": _resources(i),
        "deployment": (float(_rule("deployment", i.deployment_kind)), {"kind": i.deployment_kind}),
    }
    scored = {d: s for d, (s, _) in dims.items() if s is not None}
    weight_sum = sum(card.weights[d] for d in scored)
    # an unmeasured dimension is left out and the other weights rescaled: the report says which
    total = sum(card.weights[d] * s for d, s in scored.items()) / weight_sum
    shortfall = {d: card.weights[d] * (5 - s) for d, s in scored.items()}
    first = max(shortfall, key=lambda d: shortfall[d])
    gates = _gates(i)
    failed = [g for g in gates if not g["passed"]]
    ready = total >= card.ready_threshold and not failed
    if failed:  # the first failed gate says what to improve first
        first = {"significant_gain": "task", "min_task_score": "task",
                 "max_perplexity_increase": "general"}[failed[0]["gate"]]
    if i.direction == "inconclusive":
        verdict = ("inconclusive: the test set is too small to show whether the tuned model is better; "
                   f"{card.advice.get('inconclusive', '')}")
    elif ready:
        verdict = (f"ready to deploy (weighted score {total:.2f} of 5, threshold {card.ready_threshold:g}, every "
                   "gate passed)")
    else:
        reasons = [g["detail"] for g in failed]
        if total < card.ready_threshold:
            reasons.append(f"weighted score {total:.2f} of 5 (threshold {card.ready_threshold:g})")
        verdict = f"not ready to deploy: {'; '.join(reasons)}. Improve {first} first: {card.advice.get(first, '')}"
    return {
        "dimensions": {d: {"score": s, "weight": card.weights[d], "inputs": shown} for d, (s, shown) in dims.items()},
        "total": round(total, 2),
        "ready_threshold": card.ready_threshold,
        "ready": ready,
        "gates": gates,
        "not_measured": [d for d, (s, _) in dims.items() if s is None],
        "improve_first": None if ready or i.direction == "inconclusive" else
        {"dimension": first, "advice": card.advice.get(first, "")},
        "verdict": verdict,
    }
