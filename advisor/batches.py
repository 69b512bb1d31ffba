"""The batches a run will meet, from the data's measured lengths: the largest one (what memory must hold) and
the tokens computed over the run (what time is spent on).

The training process (runner/train.py) shuffles the training examples every epoch and cuts them into batches.
A padding-free (packed) batch is one row of its examples' lengths added up; a padded batch is `batch` rows of
its longest example (rounded up to the pad multiple). Every example is cut to max_length first. The run's
batches are simulated over several shuffles: `typical` is the largest batch that 9 shuffles in 10 stay within,
`worst` the batch of the longest examples together, which a shuffle may always draw."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BatchTokens", "batch_tokens"]

#: Simulated runs (shuffles of the whole run); fewer for very large files, so that a recommendation stays fast.
SIMULATED_RUNS = 20
#: Upper bound on examples drawn over all simulated runs.
SIMULATION_BUDGET = 20_000_000
#: The share of simulated runs whose largest batch `typical` covers.
COVERAGE = 0.9


@dataclass(frozen=True)
class BatchTokens:
    typical: int
    """Tokens in the largest batch of the run, in 9 shuffles of 10 (packed: the sum; padded: rows x longest)."""
    worst: int
    """Tokens in the largest batch any shuffle can draw: the longest examples together."""
    computed: int
    """Tokens the whole run computes (padding included), the mean over the simulated runs."""
    trained: int
    """Tokens of the examples themselves over the run (no padding): what tokens/s is counted on."""
    runs: int
    """Simulated runs behind `typical`."""
    held: int = 0
    """Tokens of the encoded training examples, held in memory while training (each cut to max_length)."""
    attention_length: float = 0.0
    """The rows' length weighted by their tokens (sum of squares over sum): attention's cost grows with the
    square of each row, so a mean of lengths would understate it."""


#: Simulations already made, by the lengths' digest and the settings: the fit asks for the same batch size and
#: length again for each checkpointing choice, strategy and alternative method (16 calls, 1.6 s of a 1.7 s
#: recommendation on 100,000 examples before).
_MADE: dict[tuple[Any, ...], BatchTokens] = {}
_MADE_LIMIT = 256


def batch_tokens(lengths: Sequence[int], *, batch: int, max_length: int, packed: bool, examples: int,
                 epochs: int, pad_multiple: int = 1, seed: int = 0) -> BatchTokens:
    """The run's batches, for `examples` training examples drawn from `lengths` (the file's examples: the
    training split is a sample of them) over `epochs` epochs."""
    import numpy as np

    raw = np.asarray(lengths, dtype=np.int64)
    if raw.size == 0:
        raise ValueError("no lengths")
    key = (hashlib.blake2b(raw.tobytes(), digest_size=16).digest(), batch, max_length, packed, examples, epochs,
           pad_multiple, seed)
    if key not in _MADE:
        if len(_MADE) >= _MADE_LIMIT:
            _MADE.clear()
        _MADE[key] = _simulate(np.minimum(raw, max_length), batch, packed, examples, epochs, pad_multiple, seed)
    return _MADE[key]


def _simulate(cut: Any, batch: int, packed: bool, examples: int, epochs: int, pad_multiple: int,
              seed: int) -> BatchTokens:
    import numpy as np

    examples = max(1, examples)
    rows = math.ceil(examples / batch)
    runs = max(3, min(SIMULATED_RUNS, SIMULATION_BUDGET // max(1, examples * epochs)))
    rng = np.random.default_rng(seed)
    largest, computed = [], []
    squares = 0.0
    for _ in range(runs):
        run_max, run_total = 0, 0
        for _ in range(epochs):
            drawn = rng.permutation(cut)[:examples] if cut.size >= examples else rng.choice(cut, size=examples)
            flat = np.zeros(rows * batch, dtype=np.int64)
            flat[:examples] = drawn
            table = flat.reshape(rows, batch)
            if packed:
                per_batch = table.sum(axis=1)
                squares += float((per_batch.astype(np.float64) ** 2).sum())
            else:
                longest = -(-table.max(axis=1) // pad_multiple) * pad_multiple
                per_batch = longest * (table > 0).sum(axis=1)
                squares += float((per_batch.astype(np.float64) * longest).sum())
            run_max = max(run_max, int(per_batch.max()))
            run_total += int(per_batch.sum())
        largest.append(run_max)
        computed.append(run_total)
    top = np.sort(cut)[::-1][:batch]
    worst = int(top.sum()) if packed else int(-(-int(top[0]) // pad_multiple) * pad_multiple * min(batch, examples))
    trained = int(round(float(cut.mean()) * examples * epochs))
    return BatchTokens(typical=int(np.quantile(largest, COVERAGE, method="higher")), worst=max(worst, max(largest)),
                       computed=int(round(float(np.mean(computed)))), trained=trained, runs=runs,
                       held=int(round(float(cut.mean()) * examples)),
                       attention_length=squares / max(1.0, float(np.sum(computed))))
