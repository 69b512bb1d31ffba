"""The whole significance suite on a large test split: time and peak memory, in a fresh process per case.

Usage: .venv/bin/python bench/stats_speed.py [--n 10000] [--resamples 10000]

Runs paired_continuous (sign-flip permutation p, BCa bootstrap interval, Wilcoxon, d_z) and paired_binary
(exact McNemar, Agresti-Min) on n paired scores, and prints the median wall time of 3 runs and the peak of
memory that numpy and Python allocated (tracemalloc). The goal: under 1 s and 200 MB at n = 10,000 with
10,000 resamples. The same computation with scipy.stats.bootstrap (which holds every resample at once) runs
side by side as the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CASE = """
import json, sys, time, tracemalloc
import numpy as np
n, resamples, which = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
base = rng.uniform(0, 1, n)
tuned = np.clip(base + rng.normal(0.02, 0.2, n), 0, 1)
if which == "binary":
    base, tuned = (base > 0.5).astype(float), (tuned > 0.5).astype(float)
from runner.stats import paired_binary, paired_continuous
from scipy import stats as sps
tracemalloc.start()
start = time.perf_counter()
if which == "continuous":
    paired_continuous(base, tuned, resamples=resamples, seed=0)
elif which == "binary":
    paired_binary(base, tuned)
else:  # the baseline: scipy's BCa bootstrap alone
    sps.bootstrap((tuned - base,), np.mean, n_resamples=resamples, method="BCa", random_state=0)
seconds = time.perf_counter() - start
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1e6}))
"""


def run(n: int, resamples: int, which: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CASE, str(n), str(resamples), which], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"n = {args.n:,}, {args.resamples:,} resamples, median of {args.rounds} runs")
    print(f"{'case':44} {'seconds':>8} {'peak MB':>8}")
    for which, label in (("continuous", "paired_continuous (permutation + BCa + ...)"),
                         ("binary", "paired_binary (exact McNemar + Agresti-Min)"),
                         ("scipy", "baseline: scipy.stats.bootstrap BCa alone")):
        runs = [run(args.n, args.resamples, which) for _ in range(args.rounds)]
        print(f"{label:44} {statistics.median(r['seconds'] for r in runs):8.3f} "
              f"{statistics.median(r['peak_mb'] for r in runs):8.1f}")


if __name__ == "__main__":
    main()
