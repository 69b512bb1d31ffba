"""Evaluation of a finished run: same test examples for both models, every file written, nothing of the
run touched, re-runnable, and bad runs refused with exit 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from knowledge.errors import InputError
from runner.evaluate import evaluate_run
from runner.report import read_report
from runner.rundir import RunDir
from runner.tiny_model import build_tiny_model
from runner.train import run_training
from tests.runner_helpers import make_run, qa_rows, tiny_texts, write_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    model = build_tiny_model(root / "llama", tiny_texts())
    data = write_data(root / "qa.jsonl", qa_rows())
    run = make_run(root, model, "lora", data, learning_rate=5e-3, max_steps=6)
    assert run_training(run) == 0
    return run.path


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_both_models_are_scored_on_exactly_the_runs_test_examples(trained: Path) -> None:
    report = evaluate_run(trained)
    test = [json.loads(line) for line in (trained / "data" / "test.jsonl").read_text().splitlines()]
    base = [json.loads(line) for line in (trained / "eval" / "predictions-base.jsonl").read_text().splitlines()]
    tuned = [json.loads(line) for line in (trained / "eval" / "predictions-tuned.jsonl").read_text().splitlines()]
    assert len(base) == len(tuned) == len(test) == report.test_examples
    assert [b["prompt"] for b in base] == [t["prompt"] for t in tuned]
    assert [b["reference"] for b in base] == [t["reference"] for t in tuned] == [r["messages"][-1]["content"]
                                                                                 for r in test]
    assert [b["source_index"] for b in base] == [r["source_index"] for r in test]
    for b in base:
        assert b["reference"] not in b["prompt"]  # the prompt never contains the reference answer
        assert set(b["scores"]) == {"exact_match", "token_f1"}


def test_the_report_holds_statistics_scorecard_and_verdict(trained: Path) -> None:
    report = read_report(RunDir(trained)) if (trained / "report.json").exists() else evaluate_run(trained)
    em = report.metrics["exact_match"]
    assert em["kind"] == "binary" and {"p_value", "effect", "ci_low", "ci_high", "n", "sentence"} <= set(em)
    assert report.metrics["token_f1"]["kind"] == "continuous"
    assert report.general_ability["perplexity_base"] > 0 and report.general_ability["texts"] == 40
    assert report.speed["base"]["tokens_per_s"] > 0 and report.speed["tuned_merged"] is not None
    card = report.scorecard
    assert set(card["dimensions"]) == {"task", "general", "speed", "resources", "deployment"}
    assert all(d["inputs"] for d in card["dimensions"].values())
    assert 1 <= card["total"] <= 5 and report.verdict == card["verdict"]
    assert (trained / "loss.png").read_bytes().startswith(b"\x89PNG")
    md = (trained / "report.md").read_text()
    assert md.splitlines()[2].startswith("**Verdict:") and "p-value is the chance" in md


def test_evaluate_is_rerunnable_and_never_touches_the_run(trained: Path) -> None:
    adapter, events = _digest(trained / "adapter"), (trained / "events.jsonl").read_bytes()
    first = evaluate_run(trained)
    second = evaluate_run(trained)
    assert first.metrics == second.metrics  # greedy decoding: the same outputs
    assert _digest(trained / "adapter") == adapter and (trained / "events.jsonl").read_bytes() == events


def test_a_run_without_a_trained_model_is_refused(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "llama", tiny_texts())
    run = make_run(tmp_path, model, "lora", write_data(tmp_path / "qa.jsonl", qa_rows()))
    with pytest.raises(InputError, match="no trained model yet"):
        evaluate_run(run.path)


def test_compare_runs_on_the_same_split_and_refuse_different_ones(tmp_path: Path) -> None:
    from runner.compare import compare_runs

    model = build_tiny_model(tmp_path / "llama", tiny_texts())
    data = write_data(tmp_path / "qa.jsonl", qa_rows())
    runs = []
    for method, lr in (("lora", 5e-3), ("ia3", 5e-2), ("p_tuning_v2", 3e-2)):
        run = make_run(tmp_path / method, model, method, data, learning_rate=lr, max_steps=3)
        assert run_training(run) == 0
        runs.append(str(run.path))
    result = compare_runs(runs)
    assert [r["method"] for r in result["runs"]] == ["lora", "ia3", "p_tuning_v2"]
    assert len(result["pairwise"]) == 3 and result["omnibus"]["test"] == "Cochran's Q"
    assert all(r["p_holm"] >= r["p_value"] for r in result["runs"] + result["pairwise"])
    other = make_run(tmp_path / "other", model, "lora", write_data(tmp_path / "qa2.jsonl", qa_rows()[:30]),
                     max_steps=1)
    assert run_training(other) == 0
    with pytest.raises(InputError, match="tested on different examples"):
        compare_runs([runs[0], str(other.path)])


def test_evaluate_json_prints_only_json(trained: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "finetune-advisor"
    result = subprocess.run([str(script), "evaluate", str(trained), "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "verdict" in json.loads(result.stdout) and "generating" in result.stderr
    # third-party warnings, log records and progress bars go to the log file, never to the terminal
    ours = ("base model: ", "tuned model: ", "merged model: ", "report: ")
    assert all(line.startswith(ours) for line in result.stderr.splitlines()), result.stderr
    assert (trained / "eval" / "evaluate.log").is_file()
