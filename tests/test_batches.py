"""The run's batches from the data's lengths: what memory must hold and what time is spent on."""

from __future__ import annotations

import pytest

from advisor.batches import batch_tokens


def test_equal_lengths_give_one_answer_packed_or_padded() -> None:
    for packed in (True, False):
        b = batch_tokens([50] * 40, batch=8, max_length=256, packed=packed, examples=40, epochs=2)
        assert b.typical == b.worst == 8 * 50
        assert b.computed == b.trained == 40 * 50 * 2


def test_a_packed_batch_holds_the_sum_of_its_examples_not_batch_x_max_length() -> None:
    lengths = [30] * 95 + [200] * 5  # short answers, a few long ones
    b = batch_tokens(lengths, batch=8, max_length=256, packed=True, examples=100, epochs=3)
    assert b.worst == 5 * 200 + 3 * 30  # every long example in one batch
    assert 8 * 30 < b.typical <= b.worst < 8 * 256
    assert b.computed == pytest.approx(b.trained, rel=0.02)


def test_a_padded_batch_is_rows_times_its_longest_example() -> None:
    lengths = [30] * 95 + [200] * 5
    b = batch_tokens(lengths, batch=8, max_length=256, packed=False, examples=100, epochs=3)
    assert b.worst == 8 * 200 and b.typical == 8 * 200  # over 39 batches one nearly always holds a long one
    assert b.computed > 2 * b.trained  # padding: the short examples are computed at the long ones' length
    assert batch_tokens(lengths, batch=8, max_length=256, packed=False, examples=100, epochs=3,
                        pad_multiple=64).worst == 8 * 256


def test_examples_are_cut_to_max_length_first() -> None:
    b = batch_tokens([1000, 10, 10, 10], batch=2, max_length=128, packed=True, examples=4, epochs=1)
    assert b.worst == 128 + 10 and b.trained == 128 + 30


def test_a_rare_long_example_is_in_the_worst_case_not_always_in_the_typical_batch() -> None:
    lengths = [20] * 999 + [2000]
    one_epoch = batch_tokens(lengths, batch=4, max_length=4096, packed=True, examples=1000, epochs=1)
    assert one_epoch.worst == 2000 + 3 * 20
    assert one_epoch.typical == one_epoch.worst  # every epoch meets the long example in some batch
    sample = batch_tokens(lengths, batch=4, max_length=4096, packed=True, examples=10, epochs=1)
    assert sample.typical < sample.worst  # 10 of 1000 drawn: the long one rarely among them


def test_the_same_seed_gives_the_same_batches() -> None:
    lengths = list(range(1, 300))
    first = batch_tokens(lengths, batch=8, max_length=128, packed=True, examples=200, epochs=2, seed=3)
    assert first == batch_tokens(lengths, batch=8, max_length=128, packed=True, examples=200, epochs=2, seed=3)
