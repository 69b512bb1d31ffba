"""The demo's assets: deterministic datasets with exact, scorable answers, and a tiny model that really
learned from its pre-training text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from advisor.data_probe import probe_file
from runner.demo_assets import build_demo_model, write_demo_datasets
from runner.records import to_messages


def test_the_datasets_are_deterministic_and_clean(tmp_path: Path) -> None:
    first = write_demo_datasets(tmp_path / "a")
    second = write_demo_datasets(tmp_path / "b")
    layouts = {"knowledge": "alpaca", "style": "messages", "reasoning": "alpaca", "agent": "messages"}
    for goal, path in first.items():
        assert path.read_bytes() == second[goal].read_bytes(), goal
        profile = probe_file(path)
        assert profile.layout == layouts[goal] and profile.examples >= 50 and not profile.problems, goal
    assert write_demo_datasets(tmp_path / "a", seed=1)["knowledge"].read_bytes() != \
        second["knowledge"].read_bytes()


def test_reasoning_answers_are_correct_and_end_with_the_final_answer(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in write_demo_datasets(tmp_path)["reasoning"].read_text().splitlines()]
    for row in rows:
        a, op, b, result = re.match(r"(\d+) ([+-]) (\d+) = (\d+)\.", row["output"]).groups()  # type: ignore[union-attr]
        assert int(result) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert row["output"].endswith(f"The answer is {result}.")


def test_agent_calls_are_valid_json_for_known_tools(tmp_path: Path) -> None:
    lines = write_demo_datasets(tmp_path)["agent"].read_text().splitlines()
    calls = 0
    for line in lines:
        answer = to_messages(json.loads(line), "messages")[-1]["content"]
        if answer.startswith("{"):
            call = json.loads(answer)
            assert call["name"] in ("get_weather", "convert_currency") and isinstance(call["arguments"], dict)
            calls += 1
    assert 0 < calls < len(lines)  # some requests need no tool


def test_knowledge_facts_are_asked_six_ways_with_one_answer(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in write_demo_datasets(tmp_path)["knowledge"].read_text().splitlines()]
    answers: dict[str, set[str]] = {}
    for row in rows:
        country = next(w.strip("?.") for w in row["instruction"].split() if w[0].isupper() and w not in
                       ("What", "Which", "Name", "Tell", "The"))
        answers.setdefault(country, set()).add(row["output"])
    assert len(answers) == 32 and all(len(a) == 1 for a in answers.values())
    assert len(rows) == 6 * 32


@pytest.mark.slow
def test_the_demo_model_learns_from_its_pretraining_text(tmp_path: Path) -> None:
    result = build_demo_model(tmp_path / "model", steps=40)
    assert result["held_out_loss_after"] < result["held_out_loss_before"] - 1.0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "pretraining.json"):
        assert (tmp_path / "model" / name).exists(), name
