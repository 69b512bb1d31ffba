"""Blind review: a person judges base and tuned answers shown as A and B in random order; the tuned model's
win rate and a two-sided binomial test (ties left out, and counted as ties) go into the report as human
preference. Each review draws its examples and sides with a fresh seed, recorded with the result; the results
screen never shows those examples labelled before the review is done."""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy import stats as sps

from runner.power import p_text
from runner.report import add_human_preference
from runner.rundir import RunDir

__all__ = ["Review", "ReviewItem", "draw_review", "read_predictions", "record_preference"]


@dataclass(frozen=True)
class ReviewItem:
    index: int
    prompt: str
    """As a person reads it (the messages with their roles, no chat template markup)."""
    a: str
    b: str
    tuned_is: str
    """"A" or "B": which side shows the tuned answer (hidden from the reviewer)."""


@dataclass(frozen=True)
class Review:
    seed: int
    """Drawn afresh for each review and recorded with its result: which examples and sides it showed."""
    items: list[ReviewItem]

    @property
    def indexes(self) -> set[int]:
        """The test examples this review shows: never shown labelled before it is done."""
        return {item.index for item in self.items}


def draw_review(run_dir: str | Path, n: int = 10, seed: int | None = None) -> Review:
    """n random test examples with both answers, sides shuffled; the seed is drawn afresh unless given."""
    run = RunDir(run_dir)
    base, tuned = read_predictions(run, "base"), read_predictions(run, "tuned")
    seed = secrets.randbelow(2 ** 31) if seed is None else seed
    rng = random.Random(seed)
    chosen = rng.sample(range(len(base)), min(n, len(base)))
    items = []
    for i in chosen:
        tuned_first = rng.random() < 0.5
        a, b = (tuned[i]["output"], base[i]["output"]) if tuned_first else (base[i]["output"], tuned[i]["output"])
        items.append(ReviewItem(i, base[i].get("question") or base[i]["prompt"], a, b, "A" if tuned_first else "B"))
    return Review(seed, items)


def record_preference(run_dir: str | Path, review: Review, choices: list[str]) -> dict[str, Any]:
    """Score the choices ("A", "B" or "tie", one per item), add them to report.json and report.md. Ties are left
    out of the test and reported as ties; with no decided pair there is no win rate."""
    items = review.items
    if len(choices) != len(items) or any(c not in ("A", "B", "tie") for c in choices):
        raise ValueError("one choice per item: A, B or tie")
    wins = sum(1 for item, c in zip(items, choices, strict=True) if c == item.tuned_is)
    ties = choices.count("tie")
    losses = len(items) - wins - ties
    decided = wins + losses
    p = 1.0 if decided == 0 else float(sps.binomtest(wins, decided, 0.5).pvalue)
    rate = wins / decided if decided else None
    if decided == 0:
        sentence = (f"In a blind review of {len(items)} answers, every pair was judged a tie: no preference either "
                    "way.")
    else:
        sentence = (f"In a blind review of {len(items)} answers, the tuned model was preferred {wins} times, the base "
                    f"{losses} times, and {ties} were ties: a win rate of {rate:.0%} of the {decided} decided pairs, "
                    f"binomial test {p_text(p)}.")
    result = {"reviewed": len(items), "tuned_wins": wins, "base_wins": losses, "ties": ties,
              "tuned_win_rate": None if rate is None else round(rate, 4), "p_value": p, "seed": review.seed,
              "sentence": sentence,
              "choices": [{"index": item.index, "tuned_was": item.tuned_is, "choice": c}
                          for item, c in zip(items, choices, strict=True)]}
    add_human_preference(RunDir(run_dir), result)
    return result


def read_predictions(run: RunDir, which: str) -> list[dict[str, Any]]:
    """The evaluation's per-example records of `which` (base or tuned), in test-split order."""
    lines = run.predictions(which).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
