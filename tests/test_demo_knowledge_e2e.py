"""End to end on the CPU: the demo's tiny pre-trained model, LoRA on the demo knowledge set, then the
evaluation. The tuned model must beat the base with p < 0.05 and an interval that excludes 0 (about 90 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.demo_assets import ensure_demo_assets
from runner.evaluate import evaluate_run
from runner.train import run_training
from tests.runner_helpers import make_run


@pytest.mark.slow
def test_lora_on_the_demo_knowledge_set_beats_the_base_significantly(tmp_path: Path, demo_dir: Path) -> None:
    assets = ensure_demo_assets(demo_dir)
    # tiny-model settings: a 1.3M-parameter model needs a far higher learning rate than a 7B one
    run = make_run(tmp_path, assets["model"], "lora", assets["data:knowledge"], learning_rate=3e-3, max_steps=600,
                   batch_size=8, gradient_accumulation=1)
    assert run_training(run) == 0
    report = evaluate_run(run.path)
    em = report.metrics["exact_match"]
    assert report.test_examples >= 15
    assert em["p_value"] < 0.05 and em["ci_low"] > 0 and em["tuned_mean"] > em["base_mean"], em["sentence"]
    assert report.significant
    for dimension in report.scorecard["dimensions"].values():
        assert dimension["score"] is not None and dimension["inputs"]


@pytest.mark.slow
def test_the_demo_command_replays_a_goal_and_summarises_it(tmp_path: Path, demo_dir: Path) -> None:
    from advisor.pipeline import demo

    [row] = demo(folder=str(demo_dir), runs_dir=str(tmp_path / "runs"), goals=("style",), say=lambda m: None)
    assert row["goal"] == "style" and row["method"] == "p_tuning_v2" and row["exit_code"] == 0
    assert row["metric"] == "rouge_l" and isinstance(row["significant"], bool) and Path(row["report"]).exists()
    assert (demo_dir / "style.yaml").exists()  # the shipped answers file, next to the model and data


@pytest.mark.slow
def test_demo_compare_tests_three_methods_on_one_split(tmp_path: Path, demo_dir: Path) -> None:
    from advisor.pipeline import demo_compare

    result = demo_compare(folder=str(demo_dir), runs_dir=str(tmp_path / "runs"), say=lambda m: None,
                          extra=["overrides.max_steps=20"])
    assert [r["method"] for r in result["runs"]] == ["lora", "p_tuning_v2", "qlora"]
    assert len(result["pairwise"]) == 3 and result["omnibus"]["test"] == "Cochran's Q"
