"""Paired significance tests for base vs tuned (numpy and scipy only: no torch).

Every score is one number per test example, base and tuned in the same order: every test here is paired.

- paired_binary: exact McNemar (two-sided binomial test on the discordant pairs); effect = tuned accuracy
  minus base accuracy with an Agresti-Min 95% interval (Wald after adding 1/2 to each cell).
- paired_continuous: paired permutation test (sign flips of the differences; exact up to 16 examples,
  else `resamples` random flips) for p; a BCa bootstrap 95% interval of the mean difference; Wilcoxon
  signed-rank as a robustness check; Cohen's d_z (mean difference / sd of differences) as effect size.
- holm: Holm-Bonferroni adjusted p-values in input order.
- friedman (continuous) and cochran_q (binary) for k >= 3 systems on the same examples.
Two-sided throughout; the sign of the effect says which way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

__all__ = ["ALPHA", "BinaryResult", "ContinuousResult", "OmnibusResult", "cochran_q", "direction", "friedman", "holm",
           "paired_binary", "paired_continuous", "p_text"]

#: The significance level of every test the report states.
ALPHA = 0.05

Z95 = 1.959963984540054
#: Sign-flip tests enumerate every pattern up to this many examples (2**16 = 65,536 patterns).
EXACT_PERMUTATION_MAX_N = 16


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def direction(p_value: float, ci_low: float, ci_high: float, alpha: float = ALPHA) -> str:
    """better (significant, the interval above zero), worse (significant, below zero) or no difference."""
    if p_value < alpha and ci_low > 0:
        return "better"
    if p_value < alpha and ci_high < 0:
        return "worse"
    return "no difference"


def _significance(p: float, alpha: float = ALPHA) -> str:
    if p < alpha:
        return "a difference this large would be unlikely (under 5%) if the two models were equally good"
    return "a difference this large could easily happen by chance, so the test does not show a real difference"


@dataclass(frozen=True)
class BinaryResult:
    p_value: float
    effect: float
    """Tuned accuracy minus base accuracy (a share, -1 to 1)."""
    ci_low: float
    ci_high: float
    n: int
    base_only: int
    """Examples the base got right and the tuned model got wrong."""
    tuned_only: int
    """Examples the tuned model got right and the base got wrong."""
    base_mean: float
    tuned_mean: float
    test: str = "exact McNemar (binomial test on discordant pairs)"
    warnings: tuple[str, ...] = field(default_factory=tuple)
    sentence: str = ""


@dataclass(frozen=True)
class ContinuousResult:
    p_value: float
    effect: float
    """Mean of tuned minus base."""
    ci_low: float
    ci_high: float
    n: int
    effect_size: float
    """Cohen's d_z: the mean difference in standard deviations of the differences."""
    wilcoxon_p: float
    base_mean: float
    tuned_mean: float
    resamples: int
    seed: int
    exact: bool
    test: str = "paired permutation (sign flips)"
    warnings: tuple[str, ...] = field(default_factory=tuple)
    sentence: str = ""


@dataclass(frozen=True)
class OmnibusResult:
    statistic: float
    p_value: float
    df: int
    k: int
    n: int
    test: str
    sentence: str = ""


def _pair(base: ArrayLike, tuned: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    b, t = np.asarray(base, dtype=float), np.asarray(tuned, dtype=float)
    if b.shape != t.shape or b.ndim != 1:
        raise ValueError(f"paired scores must be two 1-D sequences of the same length, got {b.shape} and {t.shape}")
    if len(b) == 0:
        raise ValueError("no scores to compare")
    return b, t


def paired_binary(base: ArrayLike, tuned: ArrayLike) -> BinaryResult:
    """Exact McNemar test on 0/1 scores (1 = correct)."""
    b, t = _pair(base, tuned)
    if not np.all(np.isin(b, (0, 1))) or not np.all(np.isin(t, (0, 1))):
        raise ValueError("binary scores must be 0 or 1")
    n = len(b)
    base_only = int(np.sum((b == 1) & (t == 0)))
    tuned_only = int(np.sum((b == 0) & (t == 1)))
    discordant = base_only + tuned_only
    p = 1.0 if discordant == 0 else float(sps.binomtest(min(base_only, tuned_only), discordant, 0.5).pvalue)
    effect = (tuned_only - base_only) / n
    # Agresti & Min (2005): add 1/2 to every cell of the 2x2 table, then Wald
    b_, c_, n_ = base_only + 0.5, tuned_only + 0.5, n + 2.0
    diff = (c_ - b_) / n_
    se = math.sqrt(max((b_ + c_) - (c_ - b_) ** 2 / n_, 0.0)) / n_
    low, high = max(-1.0, diff - Z95 * se), min(1.0, diff + Z95 * se)
    warnings = []
    if discordant < 6:
        warnings.append(f"only {discordant} example(s) differ between the models: with fewer than 6, an exact "
                        "McNemar test cannot reach p < 0.05 whatever the direction; use a larger test set")
    sentence = (f"The tuned model got {int(t.sum())} of {n} right, the base {int(b.sum())} "
                f"({effect * 100:+.1f} points, 95% CI {low * 100:+.1f} to {high * 100:+.1f}); "
                f"{tuned_only} were fixed and {base_only} broken. {p_text(p)}: {_significance(p)}.")
    return BinaryResult(p, effect, low, high, n, base_only, tuned_only, float(b.mean()), float(t.mean()),
                        warnings=tuple(warnings), sentence=sentence)


def _sign_flip_p(d: np.ndarray, resamples: int, seed: int) -> tuple[float, bool]:
    observed = abs(d.mean())
    tolerance = 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0)))
    if np.all(d == 0):
        return 1.0, True
    n = len(d)
    if n <= EXACT_PERMUTATION_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        means = np.abs(signs @ d) / n
        return float(np.mean(means >= observed - tolerance)), True
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(resamples, n))
    means = np.abs(signs @ d) / n
    return float((np.sum(means >= observed - tolerance) + 1) / (resamples + 1)), False


def paired_continuous(base: ArrayLike, tuned: ArrayLike, resamples: int = 9999,
                      seed: int = 0) -> ContinuousResult:
    """Paired permutation test, BCa bootstrap interval and Wilcoxon check on continuous scores."""
    b, t = _pair(base, tuned)
    d = t - b
    n = len(d)
    effect = float(d.mean())
    p, exact = _sign_flip_p(d, resamples, seed)
    if np.all(d == d[0]):  # no spread: the bootstrap distribution is a point
        low = high = effect
    else:
        boot = sps.bootstrap((d,), np.mean, n_resamples=resamples, method="BCa", confidence_level=0.95,
                             random_state=np.random.default_rng(seed))
        low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
        if not (math.isfinite(low) and math.isfinite(high)):  # BCa can fail on very few distinct values
            boot = sps.bootstrap((d,), np.mean, n_resamples=resamples, method="percentile",
                                 random_state=np.random.default_rng(seed))
            low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    if np.all(d == 0):
        wilcoxon_p = 1.0
    else:
        wilcoxon_p = float(sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    dz = effect / sd if sd > 0 else 0.0
    warnings = []
    smallest_p = 2 / 2 ** n if n <= 30 else 0.0
    if smallest_p > 0.05:
        warnings.append(f"with {n} examples a sign-flip test cannot reach p < 0.05 (its smallest p is "
                        f"{smallest_p:.3f}); use a larger test set")
    elif n < 30:
        warnings.append(f"{n} examples: only large differences can be shown; a test set of 100 or more is better")
    sentence = (f"The tuned model scored {t.mean():.3f} on average, the base {b.mean():.3f} (difference "
                f"{effect:+.3f}, 95% CI {low:+.3f} to {high:+.3f}, effect size d_z = {dz:.2f}). {p_text(p)}: "
                f"{_significance(p)}.")
    return ContinuousResult(p, effect, low, high, n, dz, wilcoxon_p, float(b.mean()), float(t.mean()), resamples,
                            seed, exact, warnings=tuple(warnings), sentence=sentence)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return [float(x) for x in adjusted]


def friedman(scores: ArrayLike) -> OmnibusResult:
    """Friedman test for k >= 3 systems on the same n examples; scores shaped (k, n)."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[0] < 3:
        raise ValueError("friedman needs scores shaped (k systems >= 3, n examples); for 2 use paired_continuous")
    result = sps.friedmanchisquare(*s)
    k, n = s.shape
    return OmnibusResult(float(result.statistic), float(result.pvalue), k - 1, k, n, "Friedman",
                         f"Friedman chi-squared = {result.statistic:.3f} on {k - 1} df, {p_text(result.pvalue)}")


def cochran_q(binary_scores: ArrayLike) -> OmnibusResult:
    """Cochran's Q for k >= 2 systems with 0/1 scores on the same n examples; scores shaped (k, n)."""
    x = np.asarray(binary_scores, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or not np.all(np.isin(x, (0, 1))):
        raise ValueError("cochran_q needs 0/1 scores shaped (k systems >= 2, n examples)")
    k, n = x.shape
    col = x.sum(axis=1)   # per system
    row = x.sum(axis=0)   # per example
    total = x.sum()
    denominator = k * total - np.sum(row ** 2)
    q = 0.0 if denominator == 0 else float((k - 1) * (k * np.sum(col ** 2) - total ** 2) / denominator)
    p = 1.0 if denominator == 0 else float(sps.chi2.sf(q, k - 1))
    return OmnibusResult(q, p, k - 1, k, n, "Cochran's Q", f"Cochran's Q = {q:.3f} on {k - 1} df, {p_text(p)}")
