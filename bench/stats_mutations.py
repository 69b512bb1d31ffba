"""Changes the statistics by meaning, one at a time, and checks that the statistics tests turn red for each.

Usage: .venv/bin/python bench/stats_mutations.py

Each mutation edits a copy of runner/stats.py or runner/power.py in a scratch folder (the checkout is never
touched) and runs the statistics tests (tests/test_stats.py, tests/test_power.py) against it. A mutation that
leaves the tests green is a hole in them; the script exits 1 if there is one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STATS, POWER = "runner/stats.py", "runner/power.py"
#: (the file, what the change means, text in the file, its replacement)
MUTATIONS = [
    (STATS, 'Agresti-Min interval -> Wald interval (no added halves)',
     'b_, c_, n_ = base_only + 0.5, tuned_only + 0.5, n + 2.0',
     'b_, c_, n_ = base_only, tuned_only, float(n)'),
    (STATS, '95% intervals -> 80% intervals',
     'Z95 = 1.959963984540054',
     'Z95 = 1.2815515655446004'),
    (STATS, 'BCa interval -> percentile interval',
     '    z0 = float(sps.norm.ppf(below))',
     '    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))\n'
     '    z0 = float(sps.norm.ppf(below))'),
    (STATS, 'BCa at 95% -> BCa at 80%',
     'def bca_interval(d: np.ndarray, resamples: int, seed: int, level: float = 0.95)',
     'def bca_interval(d: np.ndarray, resamples: int, seed: int, level: float = 0.80)'),
    (STATS, 'Monte-Carlo p (hits + 1) / (resamples + 1) -> hits / resamples',
     'return (hits + 1) / (resamples + 1), False',
     'return hits / resamples, False'),
    (STATS, 'two-sided sign-flip test -> one-sided (exact enumeration)',
     'return float(np.mean(np.abs(signs @ nonzero) >= total - tolerance)), True',
     'return float(np.mean(signs @ nonzero >= total - tolerance)), True'),
    (STATS, 'two-sided sign-flip test -> one-sided (Monte-Carlo)',
     'hits += int(np.count_nonzero(np.abs(full - 2 * (flipped @ nonzero)) >= total - tolerance))',
     'hits += int(np.count_nonzero(full - 2 * (flipped @ nonzero) >= total - tolerance))'),
    (STATS, 'two-sided exact McNemar -> one-sided',
     'float(sps.binomtest(min(base_only, tuned_only), discordant, 0.5).pvalue)',
     "float(sps.binomtest(min(base_only, tuned_only), discordant, 0.5, alternative='less').pvalue)"),
    (STATS, 'd_z with n - 1 -> with n in the standard deviation',
     'sd = float(d.std(ddof=1)) if n > 1 else 0.0',
     'sd = float(d.std(ddof=0)) if n > 1 else 0.0'),
    (STATS, "Cochran's Q on k - 1 -> k degrees of freedom",
     'p = 1.0 if denominator == 0 else float(sps.chi2.sf(q, k - 1))',
     'p = 1.0 if denominator == 0 else float(sps.chi2.sf(q, k))'),
    (STATS, 'Holm -> Bonferroni',
     'running = max(running, min(1.0, (m - rank) * p[i]))',
     'running = min(1.0, m * p[i])'),
    (STATS, 'Wilcoxon two-sided -> one-sided',
     'sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")',
     'sps.wilcoxon(d, zero_method="wilcox", alternative="greater")'),
    (POWER, 'two-sided exact-test minimum (6 differing) -> one-sided (5)',
     'while 2 * 0.5 ** k >= alpha',
     'while 0.5 ** k >= alpha'),
    (POWER, 'at least 6 fixes -> more than 6 in the detectable gain',
     'for i in range(k))',
     'for i in range(k + 1))'),
    (POWER, 'power 80% -> 50% in the detectable effect size',
     'z.inv_cdf(1 - alpha / 2) + z.inv_cdf(probability)) / math.sqrt(n)',
     'z.inv_cdf(1 - alpha / 2)) / math.sqrt(n)'),
    (POWER, 'two-sided alpha -> one-sided in the detectable effect size',
     'return (z.inv_cdf(1 - alpha / 2) + z.inv_cdf(probability)) / math.sqrt(n)',
     'return (z.inv_cdf(1 - alpha) + z.inv_cdf(probability)) / math.sqrt(n)'),
]


def main() -> int:
    holes = 0
    for file, meaning, old, new in MUTATIONS:
        source = (ROOT / file).read_text()
        assert source.count(old) == 1, f"the mutation no longer applies: {meaning}"
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "tree"
            shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv*", ".git", "runs", "__pycache__"))
            (copy / file).write_text(source.replace(old, new))
            result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                     "tests/test_stats.py", "tests/test_power.py"], cwd=copy, capture_output=True,
                                    text=True)
        caught = result.returncode != 0
        holes += not caught
        print(f"{'caught' if caught else 'MISSED'}  {meaning}", flush=True)
    print(f"{len(MUTATIONS) - holes} of {len(MUTATIONS)} mutations turned the statistics tests red")
    return 1 if holes else 0


if __name__ == "__main__":
    sys.exit(main())
