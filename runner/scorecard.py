"""The deployment scorecard: five dimensions scored 1-5 by the rules in knowledge/scorecard.yaml, from
measured inputs that are shown beside each score; the weighted total and the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from knowledge import Threshold, load_scorecard
from runner.stats import direction

__all__ = ["ScorecardInputs", "build_scorecard"]


@dataclass(frozen=True)
class ScorecardInputs:
    metric: str
    tuned_metric: float
    base_metric: float
    p_value: float
    ci_low: float
    ci_high: float
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


def _rule(dimension: str, name: str) -> Any:
    return load_scorecard().rules[dimension][name]


def _task(i: ScorecardInputs) -> tuple[float, dict[str, Any]]:
    shown = {"metric": i.metric, "tuned": round(i.tuned_metric, 4), "base": round(i.base_metric, 4),
             "p_value": i.p_value, "ci": [round(i.ci_low, 4), round(i.ci_high, 4)]}
    found = direction(i.p_value, i.ci_low, i.ci_high)
    if found == "better":
        rule: Threshold = _rule("task", "significant_gain")
        return rule.score(i.tuned_metric), {**shown, "finding": "significant gain"}
    if found == "worse":
        return float(_rule("task", "significant_loss")), {**shown, "finding": "significant loss"}
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
    ready = total >= card.ready_threshold
    return {
        "dimensions": {d: {"score": s, "weight": card.weights[d], "inputs": shown} for d, (s, shown) in dims.items()},
        "total": round(total, 2),
        "ready_threshold": card.ready_threshold,
        "ready": ready,
        "not_measured": [d for d, (s, _) in dims.items() if s is None],
        "improve_first": None if ready else {"dimension": first, "advice": card.advice.get(first, "")},
        "verdict": (f"ready to deploy (weighted score {total:.2f} of 5, threshold {card.ready_threshold:g})" if ready
                    else f"not ready to deploy (weighted score {total:.2f} of 5, threshold "
                         f"{card.ready_threshold:g}); improve {first} first: {card.advice.get(first, '')}"),
    }
