"""runner/stats.py against published reference values, identical systems, and swapped systems."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from runner.stats import bca_interval, cochran_q, direction, friedman, holm, paired_binary, paired_continuous

# R: RoundingTimes (Hollander & Wolfe), friedman.test -> Friedman chi-squared = 11.143, df = 2, p-value = 0.003805
ROUNDING_TIMES = np.array([
    [5.40, 5.50, 5.55], [5.85, 5.70, 5.75], [5.20, 5.60, 5.50], [5.55, 5.50, 5.40], [5.90, 5.85, 5.70],
    [5.45, 5.55, 5.60], [5.40, 5.40, 5.35], [5.45, 5.50, 5.35], [5.25, 5.15, 5.00], [5.85, 5.80, 5.70],
    [5.25, 5.20, 5.10], [5.65, 5.55, 5.45], [5.60, 5.35, 5.45], [5.05, 5.00, 4.95], [5.50, 5.50, 5.40],
    [5.45, 5.55, 5.50], [5.55, 5.55, 5.35], [5.45, 5.50, 5.55], [5.50, 5.45, 5.25], [5.65, 5.60, 5.40],
    [5.70, 5.65, 5.55], [6.30, 6.30, 6.25]])
# R: wilcox.test(x, y, paired = TRUE) on the depression scores (Hollander & Wolfe) -> V = 40, two-sided p = 0.03906
DEPRESSION_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
DEPRESSION_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]


def binary(base_only: int, tuned_only: int, both: int, neither: int) -> tuple[list[int], list[int]]:
    base = [1] * base_only + [0] * tuned_only + [1] * both + [0] * neither
    tuned = [0] * base_only + [1] * tuned_only + [1] * both + [0] * neither
    return base, tuned


def test_exact_mcnemar_is_the_binomial_test_on_discordant_pairs() -> None:
    base, tuned = binary(base_only=2, tuned_only=10, both=30, neither=8)
    r = paired_binary(base, tuned)
    # P(X <= 2 or X >= 10), X ~ Binomial(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert r.p_value == pytest.approx(2 * 79 / 4096)
    assert (r.base_only, r.tuned_only, r.n) == (2, 10, 50)
    assert r.effect == pytest.approx(8 / 50) and r.ci_low < r.effect < r.ci_high
    assert "10 were fixed and 2 broken" in r.sentence


def test_mcnemar_identical_systems_and_swapped_systems() -> None:
    same = paired_binary([1, 0, 1, 1, 0], [1, 0, 1, 1, 0])
    assert same.p_value == 1.0 and same.effect == 0 and same.warnings
    base, tuned = binary(3, 9, 20, 5)
    forward, backward = paired_binary(base, tuned), paired_binary(tuned, base)
    assert backward.effect == pytest.approx(-forward.effect) and backward.p_value == pytest.approx(forward.p_value)
    assert backward.ci_low == pytest.approx(-forward.ci_high) and backward.ci_high == pytest.approx(-forward.ci_low)


def test_fewer_than_six_discordant_pairs_cannot_be_significant_and_says_so() -> None:
    r = paired_binary(*binary(0, 5, 40, 5))
    assert r.p_value > 0.05 and "fewer than 6" in r.warnings[0]
    assert paired_binary(*binary(0, 6, 40, 5)).p_value < 0.05


def test_sign_flip_permutation_exact_hand_computed() -> None:
    r = paired_continuous([0, 0, 0, 0], [1, 2, 3, 4])
    assert r.exact and r.p_value == pytest.approx(2 / 16)  # only all-plus and all-minus reach |mean| >= 2.5
    assert r.effect == pytest.approx(2.5) and r.warnings  # n = 4 cannot reach p < 0.05


def test_wilcoxon_matches_r() -> None:
    r = paired_continuous(DEPRESSION_Y, DEPRESSION_X)
    assert r.wilcoxon_p == pytest.approx(0.03906, abs=5e-5)


def test_continuous_identical_and_swapped() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 60)
    tuned = np.clip(base + rng.normal(0.1, 0.1, 60), 0, 1)
    same = paired_continuous(base, base)
    assert same.p_value == 1.0 and same.effect == 0 and same.ci_low == same.ci_high == 0
    forward, backward = paired_continuous(base, tuned, seed=3), paired_continuous(tuned, base, seed=3)
    assert backward.effect == pytest.approx(-forward.effect)
    assert backward.p_value == pytest.approx(forward.p_value)
    assert forward.p_value < 0.001 and forward.ci_low > 0 and not forward.exact and forward.resamples == 9999


def test_bootstrap_interval_covers_a_known_mean_difference() -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(0.5, 0.1, 200)
    tuned = base + rng.normal(0.05, 0.05, 200)
    r = paired_continuous(base, tuned, seed=0)
    assert r.ci_low < 0.05 < r.ci_high and r.effect_size == pytest.approx(r.effect / np.std(tuned - base, ddof=1))


def test_holm_matches_r_p_adjust() -> None:
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") -> 0.030 0.060 0.060 0.020
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5] and holm([0.6, 0.9]) == [1.0, 1.0]


def test_friedman_matches_r() -> None:
    r = friedman(ROUNDING_TIMES.T)
    assert r.statistic == pytest.approx(11.143, abs=1e-3) and r.p_value == pytest.approx(0.003805, abs=1e-6)
    assert r.df == 2 and r.k == 3 and r.n == 22


def test_cochran_q_with_two_systems_is_mcnemars_chi_square() -> None:
    base, tuned = binary(3, 11, 25, 6)
    r = cochran_q([base, tuned])
    assert r.statistic == pytest.approx((11 - 3) ** 2 / (11 + 3))  # McNemar without continuity correction
    three = cochran_q([base, tuned, tuned])
    assert three.df == 2 and 0 < three.p_value < 1


def test_stats_imports_no_torch() -> None:
    code = "import sys, runner.stats; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


# ---------------------------------------------------------------- reference values that fail when a method changes

def test_agresti_min_interval_matches_r_propcis() -> None:
    # R: PropCIs::diffpropci.mp(b = 40, c = 20, n = 160, conf.level = 0.95) -> -0.21601726 -0.03089632
    # (a Wald interval without the added halves, or another level, misses these by more than 1e-3)
    r = paired_binary(*binary(base_only=40, tuned_only=20, both=50, neither=50))
    assert (r.ci_low, r.ci_high) == pytest.approx((-0.21601726, -0.03089632), abs=1e-7)
    assert r.effect == pytest.approx(-20 / 160)


# A skewed sample (exponential differences), where BCa and percentile intervals differ by about 0.002.
SKEWED = [0.19, 0.184, 0.188, -0.022, -0.041, 0.095, 0.091, 0.262, -0.042, 0.055, -0.043, 0.059, 0.123, -0.011,
          0.073, -0.035, -0.041, -0.018, 0.04, -0.009, 0.075, -0.028, 0.134, 0.073, 0.016]


def test_bca_interval_matches_scipys_bca() -> None:
    # scipy.stats.bootstrap((SKEWED,), np.mean, n_resamples=10**6, method="BCa") -> (0.02400, 0.09176);
    # its percentile interval is (0.02220, 0.08940) and its 80% BCa interval (0.03404, 0.07836)
    low, high = bca_interval(np.array(SKEWED), resamples=10**6, seed=0)
    assert low == pytest.approx(0.02400, abs=6e-4) and high == pytest.approx(0.09176, abs=6e-4)
    r = paired_continuous(np.zeros(25), SKEWED, seed=0)
    assert r.ci_low == pytest.approx(0.02400, abs=2e-3) and r.ci_high == pytest.approx(0.09176, abs=2e-3)


def test_monte_carlo_p_counts_the_observed_and_is_two_sided() -> None:
    # 30 differences, all positive: no random sign flip reaches the observed mean, so the Monte-Carlo p is
    # (0 + 1) / (resamples + 1), never 0 (Phipson and Smyth 2010)
    r = paired_continuous(np.zeros(30), np.linspace(0.1, 0.4, 30), resamples=9999, seed=0)
    assert not r.exact and r.p_value == pytest.approx(1 / 10_000)
    # 18 differences: the Monte-Carlo p agrees with the exact two-sided p from all 2**18 sign patterns
    d = np.array([0.3, -0.1, 0.25, 0.2, -0.15, 0.1, 0.05, 0.3, -0.2, 0.15, 0.1, 0.2, -0.05, 0.25, 0.1, -0.1, 0.2, 0.05])
    signs = np.array(np.meshgrid(*[[1.0, -1.0]] * len(d))).reshape(len(d), -1).T
    exact = float(np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12))
    mc = paired_continuous(np.zeros(len(d)), d, resamples=40_000, seed=1)
    assert 0.01 < exact < 0.1 and mc.p_value == pytest.approx(exact, abs=0.006)


def test_cochran_q_with_three_systems_matches_nag() -> None:
    # NAG G08ALF example (12 blocks, 3 treatments) -> Q = 2.8000 on 2 df, upper-tail probability 0.2466
    x = np.array([[1, 1, 1], [1, 1, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1], [1, 1, 0], [0, 0, 1],
                  [0, 1, 0], [1, 1, 1], [1, 1, 1]]).T
    r = cochran_q(x)
    assert r.statistic == pytest.approx(2.8) and r.df == 2 and r.p_value == pytest.approx(0.2466, abs=5e-5)


def test_effect_size_dz_is_the_paired_t_over_root_n() -> None:
    # R: t.test(x, y, paired = TRUE) on the depression scores -> t = 3.0354, df = 8; d_z = t / sqrt(9)
    r = paired_continuous(DEPRESSION_Y, DEPRESSION_X)
    assert r.effect_size == pytest.approx(3.0354 / 3, abs=1e-4)


# ---------------------------------------------------------------- edge cases

def test_effect_size_and_interval_are_not_defined_where_they_cannot_be() -> None:
    same_gain = paired_continuous([0.2, 0.4, 0.5], [0.3, 0.5, 0.6])  # every difference +0.1
    assert np.isnan(same_gain.effect_size) and "d_z = not defined" in same_gain.sentence
    one = paired_continuous([0.2], [0.7])
    assert np.isnan(one.ci_low) and np.isnan(one.ci_high) and one.direction == "inconclusive"


def test_the_cannot_reach_warning_counts_examples_that_differ() -> None:
    base = np.full(40, 0.5)
    tuned = base.copy()
    tuned[:3] += 0.4  # 40 examples, 3 of them different: no sign-flip test can reach p < 0.05
    r = paired_continuous(base, tuned)
    assert not r.detectable and "only 3 example(s)" in r.warnings[0] and r.direction == "inconclusive"
    assert "Inconclusive" in r.sentence


def test_friedman_on_identical_systems_is_no_difference() -> None:
    r = friedman(np.tile(ROUNDING_TIMES[:, 0], (3, 1)))
    assert (r.statistic, r.p_value) == (0.0, 1.0)


def test_interval_and_p_value_are_explained_together() -> None:
    # 5 fixed, 0 broken of 50: the Agresti-Min interval lies above zero, the exact test says p = 0.0625
    r = paired_binary(*binary(base_only=0, tuned_only=5, both=20, neither=25))
    assert r.ci_low > 0 and r.p_value == pytest.approx(0.0625)
    assert r.direction == "inconclusive" and "better" not in r.sentence.lower()
    shown = paired_binary(*binary(base_only=0, tuned_only=9, both=20, neither=21))
    assert shown.direction == "better" and "lies above zero" in shown.sentence
    assert direction(0.2, -0.1, 0.3) == "no difference" and direction(0.01, -0.3, -0.1) == "worse"
