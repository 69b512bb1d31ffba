"""Each demo goal replayed on the built-in SmolLM2-135M-Instruct to a report whose numbers come from its
predictions, and the knowledge demo, as shipped, significantly better than its base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from advisor.answers import load_answers
from advisor.pipeline import apply_settings, replay
from runner.metrics import score
from runner.records import GENERAL_SET
from runner.rundir import RunDir

torch = pytest.importorskip("torch")


def _scores_from_predictions(run: RunDir, metric: str) -> tuple[float, float]:
    means = []
    for which in ("base", "tuned"):
        records = [json.loads(line) for line in run.predictions(which).read_text().splitlines()]
        assert all(score(metric, r["output"], r["reference"], r["prompt"]) == r["scores"][metric] for r in records)
        means.append(sum(r["scores"][metric] for r in records) / len(records))
    return means[0], means[1]


def _replay_demo(demo_dir: Path, goal: str, tmp_path: Path, *settings: str) -> Any:
    answers = apply_settings(load_answers(demo_dir / f"{goal}.yaml"), None, list(settings))
    result = replay(answers, runs_dir=str(tmp_path / "runs"), allow_network=False, say=lambda m: None)
    assert result.exit_code == 0 and result.report is not None, result
    run = RunDir(str(result.run))
    report = result.report
    test_rows = run.split("test").read_text().splitlines()
    assert report.test_examples == len(test_rows) > 0
    base, tuned = _scores_from_predictions(run, report.primary_metric)
    assert (report.primary["base_mean"], report.primary["tuned_mean"]) == pytest.approx((base, tuned))
    assert report.general_ability["perplexity_base"] > 0 and report.verdict == report.scorecard["verdict"]
    general_set = result.plan.evaluation.general_set  # the answers' general set reaches evaluation through the plan
    assert report.general_ability["texts"] == len((GENERAL_SET if general_set == "builtin" else
                                                   Path(general_set)).read_text().splitlines())
    assert run.report_md.read_text().count(report.verdict) >= 1
    return result


@pytest.mark.parametrize(("goal", "method", "metric"), [("style", "p_tuning_v2", "rouge_l"),
                                                         ("reasoning", "lora", "accuracy"),
                                                         ("agent", "lora", "function_call")])
def test_each_demo_goal_replays_to_a_report_made_from_its_predictions(goal: str, method: str, metric: str,
                                                                     demo_dir: Path, tmp_path: Path,
                                                                     both_cores: int) -> None:
    general = tmp_path / "general.txt"  # two passages: general ability is measured, at a fraction of the time
    general.write_text("The river ran past the old mill.\nShe opened the window and the room smelled of rain.\n")
    rows = (demo_dir / "data" / f"{goal}.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "train.jsonl").write_text("".join(rows[4:]))  # the demo's data, with 4 of its examples as the test
    (tmp_path / "test.jsonl").write_text("".join(rows[:4]))  # set: every step of the report, at a quarter the time
    timed = goal == "style"  # speed is timed on one goal (the timing rounds are the same for every goal)
    result = _replay_demo(demo_dir, goal, tmp_path, "overrides.max_steps=2", "overrides.batch_size=4",
                          "overrides.gradient_accumulation=1",  # behaviour, not learning
                          f"evaluation.general_set={general}", f"evaluation.speed={str(timed).lower()}",
                          f"data.path={tmp_path / 'train.jsonl'}", f"data.test_path={tmp_path / 'test.jsonl'}")
    assert result.report.test_examples == 4
    assert (result.report.speed["ratio"] is not None) == timed
    assert result.recommendation.method == method and result.report.primary_metric == metric


@pytest.mark.exhaustive  # about 2.5 minutes on both cores: `make test-all` (and `finetune-advisor demo`) run it
def test_the_knowledge_demo_beats_the_base_significantly(demo_dir: Path, tmp_path: Path, both_cores: int) -> None:
    """The shipped knowledge demo as it is (its facts, its recommended settings): about two minutes here."""
    result = _replay_demo(demo_dir, "knowledge", tmp_path)
    primary = result.report.primary
    assert result.recommendation.method == "lora" and result.recommendation.hyperparameters["learning_rate"] == 1e-3
    assert primary["p_value"] < 0.05 and primary["ci_low"] > 0 and primary["tuned_mean"] > primary["base_mean"]
    assert result.report.direction == "better" and result.report.primary_metric == "fact_match"
    assert result.report.split["test_facts_seen_in_training"] == result.report.split["test_facts"] == 20
    assert "Test facts seen in training: 20 of 20" in RunDir(str(result.run)).report_md.read_text()
