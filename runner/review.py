"""Blind review: a person judges base and tuned answers shown as A and B in random order; the tuned model's
win rate and a two-sided binomial test (ties left out) go into the report as human preference."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy import stats as sps

from runner.report import add_human_preference
from runner.rundir import RunDir
from runner.stats import p_text

__all__ = ["ReviewItem", "read_predictions", "record_preference", "review_items"]


@dataclass(frozen=True)
class ReviewItem:
    index: int
    prompt: str
    a: str
    b: str
    tuned_is: str
    """"A" or "B": which side shows the tuned answer (hidden from the reviewer)."""


def review_items(run_dir: str | Path, n: int = 10, seed: int = 0) -> list[ReviewItem]:
    """n random test examples with both answers, sides shuffled with a recorded seed."""
    run = RunDir(run_dir)
    base, tuned = read_predictions(run, "base"), read_predictions(run, "tuned")
    rng = random.Random(seed)
    chosen = rng.sample(range(len(base)), min(n, len(base)))
    items = []
    for i in chosen:
        tuned_first = rng.random() < 0.5
        a, b = (tuned[i]["output"], base[i]["output"]) if tuned_first else (base[i]["output"], tuned[i]["output"])
        items.append(ReviewItem(i, base[i]["prompt"], a, b, "A" if tuned_first else "B"))
    return items


def record_preference(run_dir: str | Path, items: list[ReviewItem], choices: list[str],
                      seed: int = 0) -> dict[str, Any]:
    """Score the choices ("A", "B" or "tie", one per item), add them to report.json and report.md."""
    if len(choices) != len(items) or any(c not in ("A", "B", "tie") for c in choices):
        raise ValueError("one choice per item: A, B or tie")
    wins = sum(1 for item, c in zip(items, choices, strict=True) if c == item.tuned_is)
    ties = choices.count("tie")
    losses = len(items) - wins - ties
    decided = wins + losses
    p = 1.0 if decided == 0 else float(sps.binomtest(wins, decided, 0.5).pvalue)
    rate = wins / decided if decided else 0.0
    result = {"reviewed": len(items), "tuned_wins": wins, "base_wins": losses, "ties": ties,
              "tuned_win_rate": round(rate, 4), "p_value": p, "seed": seed,
              "sentence": f"In a blind review of {len(items)} answers, the tuned model was preferred {wins} times, the "
                          f"base {losses} times ({ties} ties): a win rate of {rate:.0%} of decided pairs, binomial "
                          f"test {p_text(p)}.",
              "choices": [{"index": item.index, "tuned_was": item.tuned_is, "choice": c}
                          for item, c in zip(items, choices, strict=True)]}
    add_human_preference(RunDir(run_dir), result)
    return result


def read_predictions(run: RunDir, which: str) -> list[dict[str, Any]]:
    """The evaluation's per-example records of `which` (base or tuned), in test-split order."""
    lines = run.predictions(which).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
