"""knowledge/evidence.yaml: for each decision-table rule, what the method guide says, what published comparisons
found, and what this project measured with `finetune-advisor pilot` (or the method bench) on the built-in model."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from knowledge.files import read_knowledge
from knowledge.ids import GOALS, RUNNABLE_METHODS

__all__ = ["Evidence", "Measurement", "MethodResult", "RuleEvidence", "load_evidence"]


@dataclass(frozen=True)
class MethodResult:
    method: str
    tuned: float
    p_value: float
    """Against the base, on the measurement's examples (Holm-corrected within a pilot)."""
    train_seconds: float


@dataclass(frozen=True)
class Measurement:
    id: str
    date: str
    goal: str
    model: str
    data: str
    command: str
    settings: str
    metric: str
    base: float
    results: list[MethodResult]
    best: list[str]
    """The methods that did best (those the paired tests could not tell apart from the top scorer)."""
    finding: str

    def result(self, method: str) -> MethodResult | None:
        return next((r for r in self.results if r.method == method), None)


@dataclass(frozen=True)
class RuleEvidence:
    guide: str
    published: str
    measured: Measurement | None

    def agrees(self, method: str) -> bool | None:
        """Whether the project's measurement found the rule's method among the best (None: not measured)."""
        return None if self.measured is None else method in self.measured.best


@dataclass(frozen=True)
class Evidence:
    rules: dict[str, RuleEvidence]
    measurements: dict[str, Measurement]


@functools.cache
def load_evidence() -> Evidence:
    from knowledge.decision_table import load_decision_table

    top = read_knowledge("evidence.yaml", "measurements", "rules")
    measurements: dict[str, Measurement] = {}
    for i, raw in enumerate(top.get("measurements", list)):
        m = top.item("measurements", i, raw, ("id", "date", "goal", "model", "data", "command", "settings", "metric",
                                             "base", "results", "best", "finding"))
        results = []
        for j, item in enumerate(m.get("results", list)):
            r = m.item("results", j, item, ("method", "tuned", "p_value", "train_seconds"))
            results.append(MethodResult(r.choice("method", RUNNABLE_METHODS), r.get("tuned", float),
                                        r.get("p_value", float), r.get("train_seconds", (int, float))))
        best = m.strings("best")
        measured = {r.method for r in results}
        if not best or any(b not in measured for b in best):
            m.fail("must name methods among the results", "best")
        mid = m.get("id", str)
        measurements[mid] = Measurement(mid, m.get("date", str), m.choice("goal", GOALS),
                                        m.get("model", str), m.get("data", str), m.get("command", str),
                                        m.get("settings", str), m.get("metric", str), m.get("base", float), results,
                                        best, m.get("finding", str))
    rule_ids = {r.id for r in load_decision_table().rules}
    rs = top.sub("rules", tuple(sorted(rule_ids)))
    rules: dict[str, RuleEvidence] = {}
    for rid in rs.data:
        r = rs.sub(str(rid), ("guide", "published", "measured"))
        measured_id = r.get("measured", (str, type(None)), None)
        if measured_id is not None and measured_id not in measurements:
            r.fail(f"{measured_id!r} is not a measurement id", "measured")
        rules[str(rid)] = RuleEvidence(r.get("guide", str), r.get("published", str),
                                       measurements[measured_id] if measured_id else None)
    return Evidence(rules, measurements)
