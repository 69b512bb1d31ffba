"""knowledge/hyperparameters.yaml: advised ranges and the rules that set epochs, rank, batch and length."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from knowledge.files import read_knowledge
from knowledge.ids import GOALS, RUNNABLE_METHODS
from knowledge.reader import Reader

__all__ = ["HyperparameterRanges", "LearningRateBand", "load_hyperparameters"]


@dataclass(frozen=True)
class LearningRateBand:
    up_to_b: float | None
    """The largest model (billions of parameters) the band is for; None: any size."""
    low: float
    high: float
    default: float
    source: str


@dataclass(frozen=True)
class HyperparameterRanges:
    learning_rate_bands: dict[str, list[LearningRateBand]]
    """method -> bands by model size, smallest first"""
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

    def learning_rate(self, method: str, params_b: float) -> LearningRateBand:
        """The band of `method` for a model of `params_b` billion parameters."""
        return next(b for b in self.learning_rate_bands[method] if b.up_to_b is None or params_b <= b.up_to_b)


def _ints(r: Reader, key: str) -> list[int]:
    values = r.get(key, list)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        r.fail("must be a non-empty list of positive integers", key)
    return list(values)


def _bands(r: Reader, method: str) -> list[LearningRateBand]:
    """A method's learning-rate bands: ascending sizes, the last for any size, each default inside its range."""
    bands: list[LearningRateBand] = []
    for i, raw in enumerate(r.get(method, list)):
        b = r.item(method, i, raw, ("up_to_b", "range", "default", "source"))
        up_to = b.get("up_to_b", (int, float, type(None)))
        low, high = b.number_range("range")
        default = b.get("default", float)
        if not low <= default <= high:
            b.fail(f"the default {default:g} lies outside [{low:g}, {high:g}]", "default")
        if bands and (up_to is not None and bands[-1].up_to_b is not None and up_to <= bands[-1].up_to_b):
            b.fail("bands must go from the smallest models to the largest", "up_to_b")
        bands.append(LearningRateBand(None if up_to is None else float(up_to), low, high, default,
                                      b.get("source", str)))
    if not bands or bands[-1].up_to_b is not None or any(x.up_to_b is None for x in bands[:-1]):
        r.fail("needs bands by model size, the last with up_to_b: null (any size)", method)
    return bands


def _int_range(r: Reader, key: str) -> tuple[int, int]:
    low, high = r.number_range(key)
    return int(low), int(high)


@functools.cache
def load_hyperparameters() -> HyperparameterRanges:
    top = read_knowledge("hyperparameters.yaml", "learning_rate", "epochs", "lora_rank", "num_virtual_tokens",
                         "gradient_accumulation", "batch_size", "max_length", "split")
    lr = top.sub("learning_rate", RUNNABLE_METHODS)
    learning_rate = {mid: _bands(lr, mid) for mid in RUNNABLE_METHODS}
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
        learning_rate_bands=learning_rate,
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
