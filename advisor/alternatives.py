"""The alternatives a recommendation lists: the methods the decision table passed over or that suit the goal,
each with why it was not chosen and the memory it would need."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advisor.fit import Fit, data_sizer, fit_memory
from advisor.settings import max_length_for, method_settings, precision_for
from knowledge import load_decision_table, load_hyperparameters, load_methods

if TYPE_CHECKING:
    from advisor.recommend import Budget, DataFacts, Inputs, Trace

__all__ = ["alternatives"]


def alternatives(method: str, inputs: Inputs, facts: DataFacts, budget: Budget, trace: Trace) -> list[dict[str, Any]]:
    """The other methods worth knowing about, each with why it was not chosen and what it needs."""
    answers, table = inputs.answers, load_decision_table()
    max_length = max_length_for(facts.tokens_p99, inputs.model, load_hyperparameters())

    def fit(alt: str) -> Fit:  # each alternative with its own default settings, as the user would start it
        hp = method_settings(alt, answers.goal, facts.examples, max_length, inputs.model.params_b)
        hp["precision"] = precision_for(alt, budget.device, inputs.hardware)
        sizer = data_sizer(facts.lengths, alt, hp, budget.device, facts.train_examples, seed=answers.seed)
        return fit_memory(alt, hp, inputs.model, budget.device, budget.usable, {}, facts.min_length, sizer=sizer)

    candidates: list[tuple[str, str]] = [(m, why) for m, why in trace.rejected.items() if m and m != method]
    for rule in table.stage("alternatives"):
        alt = rule.method
        if alt is None or alt == method:
            continue
        if rule.matches({"examples": facts.examples, "full_fits": fit(alt).fits, "goal": answers.goal,
                         "priority": answers.priority, "deploy": answers.deploy}):
            trace.rules.append(rule.id)
            trace.reasons.append(rule.reason.format(n=facts.examples))
            candidates.append((alt, "offered for large data: the most capacity, but more memory and time"))
    candidates += [(m, why) for m, why in table.goal_alternatives[answers.goal] if m != method]
    out: list[dict[str, Any]] = []
    seen = set()
    for alt, why in candidates:
        if alt in seen:
            continue
        seen.add(alt)
        alt_fit = fit(alt)
        need = f"needs {alt_fit.memory.estimated_gb:g} GB"
        if not alt_fit.fits:
            why = f"{need} even with batch 1, {budget.usable:g} GB usable" if alt in trace.rejected \
                else f"{why}; {need}, does not fit"
        note = load_methods()[alt].cpu_note
        if budget.device == "cpu" and note:
            why = f"{why}; {note}"
        out.append({"method": alt, "why_not": why, "estimated_gb": alt_fit.memory.estimated_gb,
                    "fits": alt_fit.fits})
    return out
