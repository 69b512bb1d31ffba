"""README sections generated from knowledge/: the decision table and the scorecard rules.

Usage: python -m advisor.docs README.md   (rewrites the text between the generated-section markers)
A test checks that README.md and knowledge/ agree.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from knowledge import Threshold, load_decision_table, load_scorecard

__all__ = ["SECTIONS", "render_decision_table", "render_scorecard", "update"]


def _when(when: dict[str, object]) -> str:
    parts = []
    for key, value in when.items():
        if key == "examples_min":
            parts.append(f"examples >= {value}")
        elif key == "examples_max":
            parts.append(f"examples <= {value}")
        elif isinstance(value, bool):
            parts.append(f"{key.replace('_', ' ')}: {'yes' if value else 'no'}")
        else:
            parts.append(f"{key} = {value}")
    return ", ".join(parts)


def render_decision_table() -> str:
    table = load_decision_table()
    lines = ["| rule | stage | when | method | why |", "|---|---|---|---|---|"]
    for rule in table.rules:
        method = rule.method or "next in the fallback chain"
        why = re.sub(r"\s*\(decision table rule \w+\)", "", rule.reason).format(
            from_method="the method", to_method="the next in the chain", needed_gb="N", available_gb="M", n="N")
        lines.append(f"| {rule.id} | {rule.stage} | {_when(rule.when)} | {method} | {why} |")
    lines.append(f"| {table.smaller_model_rule_id} | fit | even QLoRA does not fit | a smaller model | "
                 "names the largest size that would fit |")
    lines += ["", "| goal | advised examples |", "|---|---|"]
    lines += [f"| {goal} | {a.advised_examples[0]}-{a.advised_examples[1]} |" for goal, a in table.goals.items()]
    chain = ", ".join(f"{m} -> {n}" for m, n in table.fallback.items() if n)
    lines += ["", f"Fallback when a method does not fit: {chain}."]
    return "\n".join(lines)


def render_scorecard() -> str:
    card = load_scorecard()
    lines = ["| dimension | weight | rule (score 1-5) |", "|---|---|---|"]
    for dim, weight in card.weights.items():
        rules = []
        for name, rule in card.rules.get(dim, {}).items():
            label = name.replace("_", " ")
            if isinstance(rule, Threshold):
                sign = ">=" if rule.direction == "at_least" else "<="
                steps = "; ".join(f"{sign} {t:g}: {s:g}" for t, s in rule.steps)
                rules.append(f"{label}: {steps}; otherwise {rule.otherwise:g}")
            else:
                rules.append(f"{label}: {rule:g}")
        lines.append(f"| {dim} | {weight:.0%} | {'<br>'.join(rules)} |")
    gates = card.gates
    needed = (["a significant gain on the primary metric (p < 0.05 and the 95% interval above zero)"]
              if gates.significant_gain else [])
    needed += [f"the tuned model scoring at least {gates.min_task_score:g} on it",
               f"general-set perplexity at most {gates.max_perplexity_increase:.0%} above the base's"]
    lines += ["", f"Ready to deploy: weighted total >= {card.ready_threshold:g} **and** every gate passed: "
              f"{'; '.join(needed)}. A failed gate is named in the verdict. Resources is the mean of its three "
              "sub-scores; task counts a gain only when p < 0.05 and the 95% interval lies above zero; "
              "\"inconclusive\" is a test too small to show a difference either way."]
    return "\n".join(lines)


SECTIONS = {"decision-table": render_decision_table, "scorecard": render_scorecard}


def _filler(body: str) -> Callable[[re.Match[str]], str]:
    def fill(match: re.Match[str]) -> str:
        return match.group(1) + body + "\n" + match.group(2)

    return fill


def update(text: str) -> str:
    """The text with every generated section rendered anew."""
    for name, render in SECTIONS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"no generated:{name} section in the text")
        text = pattern.sub(_filler(render()), text)
    return text


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(update(path.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
