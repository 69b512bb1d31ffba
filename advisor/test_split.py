"""What the test split will be able to measure, said before training: its size, the smallest difference it can
show on the primary metric (runner/power.py), and for knowledge whether it asks facts the model trains on.

A knowledge test that asks facts the training data never taught measures guessing, not what fine-tuning put
in: the runner holds out other phrasings of trained facts (runner/data.py), which a file with one question per
fact does not have. Both problems are warnings here, so that a user hears them before a run, not after.
"""

from __future__ import annotations

from typing import Any

from advisor.answers import Answers
from advisor.data_probe import DataProfile
from knowledge import load_evaluation, load_hyperparameters
from knowledge.ids import BINARY_METRICS
from runner.data import split_count
from runner.power import smallest_difference, test_size_for_effect, test_size_for_gain

__all__ = ["check_test_split"]


def _distinct(profile: DataProfile) -> int:
    return profile.examples - profile.duplicates


def _knowledge_warnings(answers: Answers, data: DataProfile, test: DataProfile | None) -> tuple[int | None,
                                                                                                 list[str]]:
    """The examples that can be held out as new phrasings of trained facts (None with a test file), and the
    warnings about facts the test would ask without training on them."""
    path = answers.data.path
    if test is not None:
        unseen = len(test.fact_hashes - data.fact_hashes)
        if not unseen:
            return None, []
        return None, [f"{answers.data.test_path}: {unseen} of its {test.facts} facts are not in {path}: those test "
                      "questions ask what the model never trained on, which measures guessing, not what fine-tuning "
                      "taught; test new phrasings of the questions you train on"]
    if data.facts_with_phrasings == 0:
        return 0, [f"{path}: each of its {data.facts} facts is asked once (one question per answer), so fine-tuning "
                   "cannot be evaluated on it as it is: a held-out question would ask a fact the model never trained "
                   "on. Write 2-4 more phrasings of each question with the same answer (or name a field that groups "
                   "them, data.group_by), or give data.test_path with new phrasings of the trained questions. For "
                   "facts that are looked up rather than learned, retrieval (RAG) serves better than fine-tuning"]
    return _distinct(data) - data.facts, []


def check_test_split(answers: Answers, data: DataProfile | None, test: DataProfile | None,
                     examples: int) -> tuple[dict[str, Any], list[str], list[str]]:
    """The test split's size and power (recommendation.json's `evaluation`), reasons and warnings."""
    settings = load_evaluation()
    metric = settings.primary_metric(answers.goal, answers.evaluation.metric)
    warnings: list[str] = []
    spare = None
    if answers.goal == "knowledge" and data is not None and data.layout != "text":
        spare, warnings = _knowledge_warnings(answers, data, test)
    if test is not None:
        n, source = _distinct(test), f"data.test_path ({answers.data.test_path})"
    else:
        share = load_hyperparameters().split_test
        n = split_count(_distinct(data) if data is not None else examples, share)
        source = f"{share:.0%} held out of data.path"
        if spare:  # held out as other phrasings of trained facts, as many as the file has
            n, source = min(n, spare), source + ", as new phrasings of trained facts"
    power = settings.power
    binary = metric in BINARY_METRICS
    smallest, shown = smallest_difference(n, binary, power.probability, metric)
    coarsest = power.coarsest_gain if binary else power.coarsest_effect_size
    coarse = smallest is None or smallest > coarsest
    if binary:
        needed = test_size_for_gain(power.coarsest_gain, power.probability)
        target = f"a {power.coarsest_gain * 100:.0f}-point gain"
    else:
        needed = test_size_for_effect(power.coarsest_effect_size, power.probability)
        target = f"a gain of {power.coarsest_effect_size:g} standard deviations"
    chance = f"{power.probability:.0%} of the time at p < 0.05"
    statement = (f"test split: {n} examples ({source}); " +
                 (f"the smallest difference it can show ({chance}) is {shown}" if shown else
                  "too few for any test to show a difference: every result would be inconclusive"))
    reasons = [] if coarse else [statement]
    if coarse:
        share = load_hyperparameters().split_test
        warnings.append(f"{statement}. A test of {needed} examples shows {target} ({chance}): give data.test_path "
                        f"with {needed} examples, or about {round(needed / share)} examples in all for the "
                        f"{share:.0%} split")
    return ({"test_examples": n, "test_source": source, "primary_metric": metric,
             "kind": "binary" if binary else "continuous", "smallest_detectable": smallest,
             "probability": power.probability, "suggested_test_examples": needed if coarse else None,
             "statement": statement}, reasons, warnings)
