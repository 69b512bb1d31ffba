"""The power check: what a test set of n examples can show, against reference values."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from runner import power
from runner.power import min_differing, smallest_binary_gain, smallest_effect_size


def test_an_exact_two_sided_test_needs_six_differing_examples_at_five_percent() -> None:
    # two-sided exact binomial p of k out of k: 2 / 2**k; 5 give 0.0625, 6 give 0.03125
    assert min_differing(0.05) == 6 and min_differing(0.01) == 8
    assert sps.binomtest(5, 5, 0.5).pvalue > 0.05 > sps.binomtest(6, 6, 0.5).pvalue


@pytest.mark.parametrize("n", [6, 10, 20, 40, 100])
def test_the_smallest_binary_gain_is_shown_with_the_stated_probability(n: int) -> None:
    gain = smallest_binary_gain(n, 0.8)
    assert gain is not None
    # at best (no example broken) the fixes are Binomial(n, gain), and the test needs 6 of them
    assert sps.binom.sf(5, n, gain) == pytest.approx(0.8, abs=1e-6)
    assert sps.binom.sf(5, n, gain * 0.98) < 0.8


def test_five_examples_cannot_show_any_difference() -> None:
    assert smallest_binary_gain(5, 0.8) is None and smallest_effect_size(5, 0.8) is None


def test_the_smallest_effect_size_follows_the_normal_formula() -> None:
    # n = ((z(0.975) + z(0.80)) / d)**2: d = 0.5 needs 31.4, so 32 (Cohen 1988; a t-test needs 34)
    assert smallest_effect_size(32, 0.8) == pytest.approx((1.959964 + 0.841621) / math.sqrt(32), abs=1e-5)
    assert power.test_size_for_effect(0.5, 0.8) == 32
    assert smallest_effect_size(32, 0.9) == pytest.approx((1.959964 + 1.281552) / math.sqrt(32), abs=1e-5)


def test_the_suggested_size_shows_the_target_gain() -> None:
    n = power.test_size_for_gain(0.2, 0.8)
    assert smallest_binary_gain(n, 0.8) <= 0.2 < smallest_binary_gain(n - 1, 0.8)  # type: ignore[operator]
    assert n == 39
