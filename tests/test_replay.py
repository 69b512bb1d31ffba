"""Headless replay: every shipped example through the whole pipeline on a tiny model, overrides, a dry run,
malformed answers, and an interrupted replay resumed to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from advisor.answers import load_answers
from advisor.pipeline import apply_settings, replay
from knowledge.errors import InputError
from runner.events import read_events
from runner.rundir import RunDir
from runner.tiny_model import build_tiny_model
from tests.conftest import EXAMPLES
from tests.runner_helpers import tiny_texts

SCRIPT = Path(sys.executable).parent / "finetune-advisor"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "llama", tiny_texts())


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_example_replays_to_a_report(example: Path, tiny: Path, tmp_path: Path) -> None:
    answers = apply_settings(load_answers(example), None, [f"model.name_or_path={tiny}", "hardware.gpus=[]",
                                                           "hardware.nodes=1", "overrides.max_steps=3"])
    result = replay(answers, runs_dir=str(tmp_path / "runs"), allow_network=False, say=lambda m: None)
    assert result.exit_code == 0, result
    report = json.loads((Path(str(result.run)) / "report.json").read_text())
    test_lines = (Path(str(result.run)) / "data" / "test.jsonl").read_text().splitlines()
    assert report["test_examples"] == len(test_lines) > 0
    assert report["method"] == result.recommendation.method and report["goal"] == load_answers(example).goal
    primary = report["metrics"][report["primary_metric"]]
    assert {"p_value", "ci_low", "ci_high", "effect", "sentence"} <= set(primary)
    assert report["direction"] in ("better", "worse", "no difference", "inconclusive")
    assert report["verdict"] == report["scorecard"]["verdict"] and report["decoding"]["end_token_ids"]
    assert (Path(str(result.run)) / "report.md").exists() and (Path(str(result.run)) / "loss.png").exists()


def test_set_and_method_override_and_are_validated() -> None:
    answers = load_answers(EXAMPLES / "knowledge.yaml")
    changed = apply_settings(answers, "qlora", ["overrides.epochs=5", "priority=speed"])
    assert changed.overrides["method"] == "qlora" and changed.overrides["epochs"] == 5 and changed.priority == "speed"
    assert changed.resolve(changed.data.path or "") == answers.resolve(answers.data.path or "")
    with pytest.raises(InputError) as err:
        apply_settings(answers, None, ["priority=cheap"])
    assert err.value.key == "priority"
    with pytest.raises(InputError, match="key=value"):
        apply_settings(answers, None, ["priority"])


def test_dry_run_stops_after_the_plan(tmp_path: Path) -> None:
    result = subprocess.run([str(SCRIPT), "replay", str(EXAMPLES / "style.yaml"), "--dry-run", "--json",
                             "--runs-dir", str(tmp_path / "runs")], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["recommendation"]["method"] == data["plan"]["method"] == "p_tuning_v2"
    assert not (tmp_path / "runs").exists()


def test_malformed_answers_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ngoal: style\ndata: {path: nowhere.jsonl}\nmodel: {name_or_path: gpt2}\n")
    result = subprocess.run([str(SCRIPT), "replay", str(bad)], capture_output=True, text=True, env=ENV)
    assert result.returncode == 2 and "data.path" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([str(SCRIPT), "replay", str(EXAMPLES / "style.yaml"), "--set", "overrides.epochs=-1"],
                            capture_output=True, text=True, env=ENV)
    assert result.returncode == 2 and "overrides.epochs" in result.stderr


def test_an_interrupted_replay_resumes_to_the_same_result(tiny: Path, tmp_path: Path) -> None:
    answers = tmp_path / "a.yaml"
    raw = yaml.safe_load((EXAMPLES / "knowledge.yaml").read_text())
    raw["data"]["path"] = str(EXAMPLES / "data" / "product_faq.jsonl")
    raw["model"] = {"name_or_path": str(tiny)}
    raw["hardware"] = {"gpus": [], "ram_gb": 16}
    raw["overrides"] = {"max_steps": 120, "batch_size": 16, "gradient_accumulation": 2, "save_steps": 20,
                        "learning_rate": 1e-3}
    answers.write_text(yaml.safe_dump(raw))
    runs = tmp_path / "runs"
    first = subprocess.Popen([str(SCRIPT), "replay", str(answers), "--json", "--runs-dir", str(runs)], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while True:
        assert time.time() < deadline, "training did not reach a checkpoint"
        found = list(runs.glob("*/events.jsonl")) if runs.exists() else []
        if found and any(e.get("phase") == "checkpoint" for e in read_events(found[0])):
            break
        time.sleep(0.1)
    run = RunDir(found[0].parent)
    os.kill(int(run.pid.read_text()), signal.SIGKILL)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 1 and json.loads(out)["exit_code"] == 1
    resumed = subprocess.run([str(SCRIPT), "replay", str(answers), "--resume", str(run.path), "--json"],
                             capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["run"] == str(run.path) and "verdict" in summary
    assert read_events(run.events)[-1]["steps"] == 120 and (run.path / "report.json").exists()
