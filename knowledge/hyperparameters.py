"""knowledge/hyperparameters.yaml: advised ranges and the rules that set epochs, rank, batch and length."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from knowledge.files import read_knowledge
from knowledge.ids import GOALS, RUNNABLE_METHODS
from knowledge.methods import load_methods
from knowledge.reader import Reader

__all__ = ["HyperparameterRanges", "load_hyperparameters"]


@dataclass(frozen=True)
class HyperparameterRanges:
    learning_rate: dict[str, tuple[float, float]]
    epochs_range: tuple[int, int]
    target_example_passes: int
    lora_rank_range: tuple[int, int]
    lora_rank_by_goal: dict[str, int]
    double_rank_above_examples: int
    halve_rank_below_examples: int
    alpha_per_rank: float
    num_virtual_tokens_range: tuple[int, int]
    gradient_accumulation_range: tuple[int, int]
    target_effective_batch: int
    batch_size_candidates: list[int]
    max_length_candidates: list[int]
    max_length_default: int
    split_validation: float
    split_test: float


def _ints(r: Reader, key: str) -> list[int]:
    values = r.get(key, list)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        r.fail("must be a non-empty list of positive integers", key)
    return list(values)


def _int_range(r: Reader, key: str) -> tuple[int, int]:
    low, high = r.number_range(key)
    return int(low), int(high)


@functools.cache
def load_hyperparameters() -> HyperparameterRanges:
    top = read_knowledge("hyperparameters.yaml", "learning_rate", "epochs", "lora_rank", "num_virtual_tokens",
                         "gradient_accumulation", "batch_size", "max_length", "split")
    lr = top.sub("learning_rate", RUNNABLE_METHODS)
    methods = load_methods()
    learning_rate = {}
    for mid in RUNNABLE_METHODS:
        low, high = lr.number_range(mid)
        default = methods[mid].defaults["learning_rate"]
        if not low <= default <= high:
            lr.fail(f"the default {default} of methods.yaml lies outside [{low}, {high}]", mid)
        learning_rate[mid] = (low, high)
    ep = top.sub("epochs", ("range", "target_example_passes"))
    rank = top.sub("lora_rank", ("range", "by_goal", "double_above_examples", "halve_below_examples",
                                 "alpha_per_rank"))
    vt = top.sub("num_virtual_tokens", ("range",))
    by_goal = rank.sub("by_goal", GOALS)
    ga = top.sub("gradient_accumulation", ("range", "target_effective_batch"))
    bs = top.sub("batch_size", ("candidates",))
    ml = top.sub("max_length", ("candidates", "default"))
    sp = top.sub("split", ("validation", "test"))
    split_validation, split_test = sp.get("validation", float), sp.get("test", float)
    if not (0 <= split_validation < 0.5 and 0 < split_test < 0.5):
        sp.fail("validation must be in [0, 0.5) and test in (0, 0.5)")
    return HyperparameterRanges(
        learning_rate=learning_rate,
        epochs_range=_int_range(ep, "range"),
        target_example_passes=ep.get("target_example_passes", int),
        lora_rank_range=_int_range(rank, "range"),
        lora_rank_by_goal={g: by_goal.get(g, int) for g in GOALS},
        double_rank_above_examples=rank.get("double_above_examples", int),
        halve_rank_below_examples=rank.get("halve_below_examples", int),
        alpha_per_rank=rank.get("alpha_per_rank", float),
        num_virtual_tokens_range=_int_range(vt, "range"),
        gradient_accumulation_range=_int_range(ga, "range"),
        target_effective_batch=ga.get("target_effective_batch", int),
        batch_size_candidates=sorted(_ints(bs, "candidates"), reverse=True),
        max_length_candidates=sorted(_ints(ml, "candidates")),
        max_length_default=ml.get("default", int),
        split_validation=split_validation,
        split_test=split_test,
    )
