"""Comparing runs that share one test split: each run against its base, every pair of runs against each
other (Holm-corrected), an omnibus test first when there are three or more, and their scorecards."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

from knowledge.errors import InputError
from runner.metrics import BINARY
from runner.report import read_report
from runner.review import read_predictions
from runner.rundir import RunDir, open_run_dir
from runner.stats import cochran_q, friedman, holm, paired_binary, paired_continuous

__all__ = ["compare_runs"]


def _split_digest(run: RunDir) -> str:
    path = run.split("test")
    if not path.is_file():
        raise InputError("the run has no saved test split", file=str(run.path), hint="train it first")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scores(run: RunDir, which: str, metric: str) -> list[float]:
    return [float(record["scores"][metric]) for record in read_predictions(run, which)]


def compare_runs(run_dirs: list[str], *, progress: Any = None) -> dict[str, Any]:
    if len(run_dirs) < 2:
        raise InputError("compare needs two or more run directories")
    runs = [open_run_dir(d) for d in run_dirs]
    seen: dict[Path, str] = {}
    for given, run in zip(run_dirs, runs, strict=True):
        where = run.path.resolve()
        if where in seen:
            raise InputError(f"{given} is the same run as {seen[where]}: a run compared with itself tells nothing "
                             "and widens the correction for the others", file=given,
                             hint="name each run directory once")
        seen[where] = given
    digests = {str(r.path): _split_digest(r) for r in runs}
    if len(set(digests.values())) > 1:
        first = str(runs[0].path)
        different = [p for p, d in digests.items() if d != digests[first]]
        raise InputError(f"these runs were tested on different examples than {first}: {', '.join(different)}",
                         hint="compare only runs trained on the same data with the same seed (or the same test_path)")
    reports = []
    for run in runs:
        if not run.report_json.is_file():
            from runner.evaluate import evaluate_run

            if progress:
                progress(f"evaluating {run.path} first")
            evaluate_run(run.path, progress=progress)
        reports.append(read_report(run))
    metrics = {r.primary_metric for r in reports}
    if len(metrics) > 1:
        raise InputError(f"the runs are scored with different primary metrics ({', '.join(sorted(metrics))})",
                         hint="set the same evaluation.metric in their answers")
    metric = metrics.pop()
    binary = metric in BINARY
    test = paired_binary if binary else paired_continuous
    names = [f"{r.method} ({Path(r.run).name})" for r in reports]
    tuned = [_scores(run, "tuned", metric) for run in runs]

    vs_base = [test(_scores(run, "base", metric), t) for run, t in zip(runs, tuned, strict=True)]
    vs_base_holm = holm([r.p_value for r in vs_base])
    pairs = list(itertools.combinations(range(len(runs)), 2))
    pairwise = [test(tuned[i], tuned[j]) for i, j in pairs]
    pairwise_holm = holm([r.p_value for r in pairwise]) if pairs else []
    omnibus = None
    if len(runs) >= 3:
        result = cochran_q(tuned) if binary else friedman(tuned)
        omnibus = {"test": result.test, "statistic": result.statistic, "p_value": result.p_value, "df": result.df,
                   "sentence": result.sentence}
    return {
        "metric": metric, "kind": "binary" if binary else "continuous", "test_examples": len(tuned[0]),
        "runs": [{"name": n, "run": r.run, "method": r.method, "base": v.base_mean, "tuned": v.tuned_mean,
                  "effect": v.effect, "ci": [v.ci_low, v.ci_high], "p_value": v.p_value, "p_holm": ph,
                  "scorecard_total": r.scorecard["total"], "ready": r.scorecard["ready"], "verdict": r.verdict}
                 for n, r, v, ph in zip(names, reports, vs_base, vs_base_holm, strict=True)],
        "omnibus": omnibus,
        "pairwise": [{"a": names[i], "b": names[j], "effect_b_minus_a": r.effect, "ci": [r.ci_low, r.ci_high],
                      "p_value": r.p_value, "p_holm": ph, "sentence": r.sentence}
                     for (i, j), r, ph in zip(pairs, pairwise, pairwise_holm, strict=True)],
    }
