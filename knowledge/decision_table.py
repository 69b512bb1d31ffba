"""knowledge/decision_table.yaml: the rules that choose a method (goal, then priority, then deploy target),
the memory fallbacks, the advised data sizes per goal, and each goal's alternatives."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from knowledge.files import read_knowledge
from knowledge.ids import DEPLOY_TARGETS, GOALS, PRIORITIES, RUNNABLE_METHODS
from knowledge.methods import load_methods

__all__ = ["DecisionTable", "GoalAdvice", "Rule", "STAGES", "WHEN_KEYS", "load_decision_table"]

STAGES = ("goal", "priority", "deploy", "fit", "alternatives")
WHEN_KEYS = ("goal", "priority", "deploy", "examples_min", "examples_max", "fits", "full_fits")


@dataclass(frozen=True)
class GoalAdvice:
    advised_examples: tuple[int, int]
    too_few: str
    too_many: str


@dataclass(frozen=True)
class Rule:
    id: str
    stage: str
    when: dict[str, Any]
    method: str | None
    reason: str

    def matches(self, facts: dict[str, Any]) -> bool:
        """True when every condition holds for `facts` (keys as in WHEN_KEYS)."""
        for key, want in self.when.items():
            if key == "examples_min":
                if facts.get("examples") is None or facts["examples"] < want:
                    return False
            elif key == "examples_max":
                if facts.get("examples") is None or facts["examples"] > want:
                    return False
            elif isinstance(want, list):
                if facts.get(key) not in want:
                    return False
            elif facts.get(key) != want:
                return False
        return True


@dataclass(frozen=True)
class DecisionTable:
    goals: dict[str, GoalAdvice]
    rules: list[Rule]
    fallback: dict[str, str | None]
    smaller_model_rule_id: str
    smaller_model_reason: str
    goal_alternatives: dict[str, list[tuple[str, str]]]
    """goal -> [(method, why it was not the first choice)]"""

    def stage(self, stage: str) -> list[Rule]:
        return [r for r in self.rules if r.stage == stage]

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


_WHEN_VALUES: dict[str, tuple[str, ...]] = {"goal": GOALS, "priority": PRIORITIES, "deploy": DEPLOY_TARGETS}


@functools.cache
def load_decision_table() -> DecisionTable:
    top = read_knowledge("decision_table.yaml", "goals", "rules", "fallback", "smaller_model_rule",
                         "goal_alternatives")
    methods = load_methods()
    g = top.sub("goals", GOALS)
    goals: dict[str, GoalAdvice] = {}
    for goal in GOALS:
        gr = g.sub(goal, ("advised_examples", "too_few", "too_many"))
        low, high = gr.number_range("advised_examples")
        goals[goal] = GoalAdvice((int(low), int(high)), gr.get("too_few", str), gr.get("too_many", str))
    rules: list[Rule] = []
    for i, raw in enumerate(top.get("rules", list)):
        r = top.item("rules", i, raw, ("id", "stage", "when", "method", "reason"))
        rid = r.get("id", str)
        if any(x.id == rid for x in rules):
            r.fail(f"duplicate rule id {rid!r}", "id")
        stage = r.choice("stage", STAGES)
        w = r.sub("when", WHEN_KEYS)
        for key, allowed in _WHEN_VALUES.items():
            if key in w.data:
                values = w.data[key] if isinstance(w.data[key], list) else [w.data[key]]
                bad = [v for v in values if v not in allowed]
                if bad:
                    w.fail(f"{bad[0]!r} is not allowed", key, f"one of: {', '.join(allowed)}")
        for key in ("examples_min", "examples_max"):
            if key in w.data:
                w.get(key, int)
        for key in ("fits", "full_fits"):
            if key in w.data:
                w.get(key, bool)
        method = r.get("method", str, None)
        if method is not None and (method not in methods or not methods[method].runnable):
            r.fail(f"{method!r} is not a runnable method id", "method")
        if stage != "fit" and method is None:
            r.fail(f"a {stage}-stage rule needs a method", "method")
        rules.append(Rule(rid, stage, dict(w.data), method, r.get("reason", str)))
    fb = top.sub("fallback", RUNNABLE_METHODS)
    fallback: dict[str, str | None] = {}
    for mid in RUNNABLE_METHODS:
        target = fb.get(mid, (str, type(None)))
        if target is not None and target not in RUNNABLE_METHODS:
            fb.fail(f"{target!r} is not a runnable method id", mid)
        fallback[mid] = target
    sm = top.sub("smaller_model_rule", ("id", "reason"))
    ga = top.sub("goal_alternatives", GOALS)
    goal_alternatives: dict[str, list[tuple[str, str]]] = {}
    for goal in GOALS:
        items = []
        for j, item in enumerate(ga.get(goal, list)):
            ir = ga.item(goal, j, item, ("method", "why_not"))
            items.append((ir.choice("method", RUNNABLE_METHODS), ir.get("why_not", str)))
        goal_alternatives[goal] = items
    return DecisionTable(goals, rules, fallback, sm.get("id", str), sm.get("reason", str), goal_alternatives)
