"""Paired significance tests for base vs tuned (numpy and scipy only: no torch).

Every score is one number per test example, base and tuned in the same order: every test here is paired.

- paired_binary: exact McNemar (two-sided binomial test on the discordant pairs); effect = tuned accuracy
  minus base accuracy with an Agresti-Min 95% interval (Wald after adding 1/2 to each cell).
- paired_continuous: paired permutation test (sign flips of the non-zero differences; exact up to 16 of
  them, else `resamples` random flips) for p; a BCa bootstrap 95% interval of the mean difference;
  Wilcoxon signed-rank as a robustness check; Cohen's d_z (mean difference / sd of differences) as effect
  size. Resampling runs in chunks: 10,000 examples with 10,000 resamples take well under a second and
  little memory (bench/stats_speed.py).
- direction: better, worse, no difference, or inconclusive (the test could not have shown a difference);
  explain() puts the interval and the p-value in words that agree.
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

from runner.power import ALPHA, min_differing, p_text

__all__ = ["ALPHA", "DIRECTIONS", "BinaryResult", "ContinuousResult", "OmnibusResult", "bca_interval", "cochran_q",
           "direction", "explain", "friedman", "holm", "paired_binary", "paired_continuous", "p_text"]

Z95 = 1.959963984540054
#: Sign-flip tests enumerate every pattern up to this many examples (2**16 = 65,536 patterns).
EXACT_PERMUTATION_MAX_N = 16
#: With fewer examples that differ, no two-sided exact test here can reach p < 0.05 (2 / 2**5 = 0.0625).
MIN_DIFFERING = min_differing(ALPHA)
#: Resampling works in chunks of about this many numbers, so memory stays bounded (about 16 MB a chunk).
CHUNK_ELEMENTS = 2_000_000


DIRECTIONS = ("better", "worse", "no difference", "inconclusive")


def direction(p_value: float, ci_low: float, ci_high: float, detectable: bool = True, alpha: float = ALPHA) -> str:
    """better (significant, the interval above zero), worse (significant, below zero), inconclusive (the test
    could not have shown a difference at this size: too few examples, or too few that differ), or no
    difference (it could have, and did not)."""
    if p_value < alpha and ci_low > 0:
        return "better"
    if p_value < alpha and ci_high < 0:
        return "worse"
    return "no difference" if detectable else "inconclusive"


def explain(found: str, low: float, high: float, p: float, unit: str = "") -> str:
    """The interval and the p-value read together, in words that never contradict each other."""
    interval = ("not defined (too few examples)" if not (math.isfinite(low) and math.isfinite(high))
                else f"{low:+.3g}{unit} to {high:+.3g}{unit}")
    if found == "better":
        return (f"The tuned model is better: {p_text(p)}, and the 95% interval of the difference, {interval}, "
                "lies above zero.")
    if found == "worse":
        return (f"The tuned model is worse: {p_text(p)}, and the 95% interval of the difference, {interval}, "
                "lies below zero.")
    if found == "inconclusive":
        return (f"Inconclusive: the test set is too small for this test to show a difference at all ({p_text(p)}; "
                f"95% interval {interval}). This says nothing either way: test on more examples.")
    if math.isfinite(low) and (low > 0 or high < 0):
        return (f"No difference shown: the 95% interval, {interval}, excludes zero, but the test's {p_text(p)} is "
                "not below 0.05; at this size the two disagree at the edge, so the difference is not established.")
    return (f"No difference shown ({p_text(p)}): the 95% interval, {interval}, includes zero, so the data fit a "
            "gain as well as a loss of that size.")


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
    detectable: bool = True
    """Whether p < 0.05 was reachable at all: exact McNemar needs 6 or more discordant pairs."""
    direction: str = "no difference"
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
    """Cohen's d_z: the mean difference in standard deviations of the differences (n - 1 in the denominator);
    0 when every difference is 0; NaN when it is not defined (fewer than 2 examples, or every difference the
    same non-zero value)."""
    wilcoxon_p: float
    base_mean: float
    tuned_mean: float
    resamples: int
    seed: int
    exact: bool
    detectable: bool = True
    """Whether p < 0.05 was reachable at all: a sign-flip test needs 6 or more non-zero differences."""
    direction: str = "no difference"
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
    detectable = discordant >= MIN_DIFFERING
    if not detectable:
        warnings.append(f"only {discordant} example(s) differ between the models: with fewer than {MIN_DIFFERING}, "
                        "an exact McNemar test cannot reach p < 0.05 whatever the direction; use a larger test set")
    found = direction(p, low, high, detectable)
    sentence = (f"The tuned model got {int(t.sum())} of {n} right, the base {int(b.sum())} "
                f"({effect * 100:+.1f} points); {tuned_only} were fixed and {base_only} broken. "
                + explain(found, low * 100, high * 100, p, " points"))
    return BinaryResult(p, effect, low, high, n, base_only, tuned_only, float(b.mean()), float(t.mean()),
                        detectable=detectable, direction=found, warnings=tuple(warnings), sentence=sentence)


def _sign_flip_p(d: np.ndarray, resamples: int, seed: int) -> tuple[float, bool]:
    """Two-sided p of the mean difference under random signs: exact enumeration up to 16 non-zero differences
    (zeros flip to themselves), else (hits + 1) / (resamples + 1) over random flips (Phipson and Smyth 2010: a
    Monte-Carlo p is never 0). Flips are drawn in chunks, so memory stays bounded at any size."""
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        return 1.0, True
    total = abs(float(nonzero.sum()))
    tolerance = 1e-12 * max(1.0, float(np.abs(nonzero).sum()))
    m = len(nonzero)
    if m <= EXACT_PERMUTATION_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=m)))
        return float(np.mean(np.abs(signs @ nonzero) >= total - tolerance)), True
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, CHUNK_ELEMENTS // m)
    full = float(nonzero.sum())
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        # one random bit a difference (8 to a byte): the flipped ones are subtracted twice from the full sum
        flipped = np.unpackbits(rng.integers(0, 256, size=(rows, m // 8 + 1), dtype=np.uint8), axis=1)[:, :m]
        hits += int(np.count_nonzero(np.abs(full - 2 * (flipped @ nonzero)) >= total - tolerance))
    return (hits + 1) / (resamples + 1), False


def bca_interval(d: np.ndarray, resamples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """BCa bootstrap interval of the mean of `d` (Efron and Tibshirani 1993, 14.3; as scipy.stats.bootstrap's
    BCa), with the resampled means drawn in chunks so that memory stays bounded; the jackknife of a mean has a
    closed form. NaN where the interval is not defined (fewer than 2 values)."""
    n = len(d)
    if n < 2:
        return math.nan, math.nan
    theta = float(d.mean())
    if np.all(d == d[0]):  # no spread: every resample has the same mean
        return theta, theta
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        means[start:start + rows] = d[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    below = (np.count_nonzero(means < theta) + np.count_nonzero(means <= theta)) / (2 * resamples)
    if not 0 < below < 1:  # every resample on one side: the bias correction is infinite
        return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))
    z0 = float(sps.norm.ppf(below))
    jack = (d.sum() - d) / (n - 1)  # the mean without each value in turn
    u = (n - 1) * (jack.mean() - jack)
    accel = float(np.sum(u ** 3) / n ** 3 / (6 * (np.sum(u ** 2) / n ** 2) ** 1.5))
    bounds = []
    for z in (sps.norm.ppf((1 - level) / 2), sps.norm.ppf((1 + level) / 2)):
        bounds.append(float(sps.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))))
    low, high = np.quantile(means, bounds)
    return float(low), float(high)


def paired_continuous(base: ArrayLike, tuned: ArrayLike, resamples: int = 9999,
                      seed: int = 0) -> ContinuousResult:
    """Paired permutation test, BCa bootstrap interval and Wilcoxon check on continuous scores."""
    b, t = _pair(base, tuned)
    d = t - b
    n = len(d)
    effect = float(d.mean())
    p, exact = _sign_flip_p(d, resamples, seed)
    low, high = bca_interval(d, resamples, seed)
    if np.all(d == 0):
        wilcoxon_p = 1.0
    else:
        wilcoxon_p = float(sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    dz = effect / sd if sd > 0 else (0.0 if effect == 0 and n > 1 else math.nan)
    differing = int(np.count_nonzero(d))
    detectable = differing >= MIN_DIFFERING
    warnings = []
    if not detectable:
        warnings.append(f"only {differing} example(s) score differently between the models: with fewer than "
                        f"{MIN_DIFFERING}, a sign-flip test cannot reach p < 0.05 (its smallest p is "
                        f"{2 / 2 ** differing if differing else 1:.3f}); use a larger test set")
    found = direction(p, low, high, detectable)
    size = "not defined" if math.isnan(dz) else f"{dz:.2f}"
    sentence = (f"The tuned model scored {t.mean():.3f} on average, the base {b.mean():.3f} (difference "
                f"{effect:+.3f}, effect size d_z = {size}). " + explain(found, low, high, p))
    return ContinuousResult(p, effect, low, high, n, dz, wilcoxon_p, float(b.mean()), float(t.mean()), resamples,
                            seed, exact, detectable=detectable, direction=found, warnings=tuple(warnings),
                            sentence=sentence)


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
    k, n = s.shape
    if np.all(s == s[0]):  # identical systems: every rank ties, scipy's statistic is 0/0
        statistic, p = 0.0, 1.0
    else:
        result = sps.friedmanchisquare(*s)
        statistic, p = float(result.statistic), float(result.pvalue)
    return OmnibusResult(statistic, p, k - 1, k, n, "Friedman",
                         f"Friedman chi-squared = {statistic:.3f} on {k - 1} df, {p_text(p)}")


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
