"""What a test set of n examples can show, before anything is trained (the recommendation's power check) and
after (whether a result is inconclusive). Standard library only: the advisor imports it.

- Binary metrics (exact McNemar): a two-sided exact test needs at least `min_differing()` examples that differ
  between the models (6 at p < 0.05: 2 / 2**5 = 0.0625, 2 / 2**6 = 0.031). The smallest gain it shows with the
  stated probability is found at best, when no example gets worse: the tuned model fixes each example with
  probability delta, so the fixes are Binomial(n, delta) and the test needs 6 of them or more.
- Continuous metrics (paired sign-flip test, close to a paired t-test): the smallest effect size d_z (the mean
  gain in standard deviations of the differences) shown with the stated probability is
  (z(1 - alpha/2) + z(probability)) / sqrt(n): 2.80 / sqrt(n) for 80% at p < 0.05.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["ALPHA", "min_differing", "p_text", "smallest_binary_gain", "smallest_difference", "smallest_effect_size",
           "test_size_for_effect", "test_size_for_gain"]

#: The significance level of every test the report states.
ALPHA = 0.05


def p_text(p: float) -> str:
    """A p-value as the report writes it."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def min_differing(alpha: float = ALPHA) -> int:
    """The fewest differing examples with which a two-sided exact test can reach p < alpha."""
    k = 1
    while 2 * 0.5 ** k >= alpha:
        k += 1
    return k


def _at_least(n: int, p: float, k: int) -> float:
    """P(Binomial(n, p) >= k)."""
    return 1.0 - sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k))


def smallest_binary_gain(n: int, probability: float, alpha: float = ALPHA) -> float | None:
    """The smallest gain (a share of the examples, 0-1) that n paired 0/1 scores show at p < alpha with this
    probability, at best (no example gets worse); None when no gain can be shown at all."""
    k = min_differing(alpha)
    if n < k:
        return None
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (low, mid) if _at_least(n, mid, k) >= probability else (mid, high)
    return high


def smallest_effect_size(n: int, probability: float, alpha: float = ALPHA) -> float | None:
    """The smallest d_z that n paired continuous scores show at p < alpha with this probability; None when no
    difference can be shown at all."""
    if n < min_differing(alpha):
        return None
    z = NormalDist()
    return (z.inv_cdf(1 - alpha / 2) + z.inv_cdf(probability)) / math.sqrt(n)


def smallest_difference(n: int, binary: bool, probability: float, metric: str) -> tuple[float | None, str | None]:
    """The smallest difference n paired scores show (a gain for 0/1 metrics, d_z otherwise) and how the report
    words it; (None, None) when no difference can be shown at all."""
    if binary:
        gain = smallest_binary_gain(n, probability)
        return gain, None if gain is None else f"a gain of {gain * 100:.0f} points of {metric}, at best"
    d = smallest_effect_size(n, probability)
    return d, None if d is None else f"a mean gain of {d:.2f} standard deviations (d_z) of {metric}"


def test_size_for_gain(gain: float, probability: float, alpha: float = ALPHA) -> int:
    """The fewest test examples that show this gain (binary metrics), at best."""
    n = min_differing(alpha)
    while (found := smallest_binary_gain(n, probability, alpha)) is None or found > gain:
        n += 1
    return n


def test_size_for_effect(effect_size: float, probability: float, alpha: float = ALPHA) -> int:
    """The fewest test examples that show this d_z (continuous metrics)."""
    z = NormalDist()
    n = math.ceil(((z.inv_cdf(1 - alpha / 2) + z.inv_cdf(probability)) / effect_size) ** 2)
    return max(n, min_differing(alpha))
