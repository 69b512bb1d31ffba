"""The demo's datasets: deterministic, clean, with exact and scorable answers; knowledge tested on trained facts
in a phrasing training never saw; and nothing a user changed is overwritten without a backup."""

from __future__ import annotations

import json
import re
from pathlib import Path

from advisor.data_probe import find_overlap, probe_file
from runner.demo_assets import KNOWLEDGE_FACTS, KNOWLEDGE_TRAIN_PHRASINGS, write_demo_datasets, write_kept
from runner.records import to_messages


def test_the_datasets_are_deterministic_and_clean(tmp_path: Path) -> None:
    first = write_demo_datasets(tmp_path / "a")
    second = write_demo_datasets(tmp_path / "b")
    layouts = {"knowledge": "alpaca", "knowledge_test": "alpaca", "style": "messages", "reasoning": "alpaca",
               "agent": "messages"}
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), name
        profile = probe_file(path)
        assert profile.layout == layouts[name] and profile.examples >= 20 and not profile.problems, name
    assert write_demo_datasets(tmp_path / "a", seed=1)["knowledge"].read_bytes() != \
        second["knowledge"].read_bytes()


def test_reasoning_answers_are_correct_and_end_with_the_final_answer(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in write_demo_datasets(tmp_path)["reasoning"].read_text().splitlines()]
    for row in rows:
        a, op, b, result = re.match(r"(\d+) ([+-]) (\d+) = (\d+)\.", row["output"]).groups()  # type: ignore[union-attr]
        assert int(result) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert row["output"].endswith(f"The answer is {result}.")
    assert len({row["instruction"] for row in rows}) == len(rows)  # no problem twice: no leak across the split


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


def test_knowledge_tests_trained_facts_in_a_phrasing_training_never_saw(tmp_path: Path) -> None:
    paths = write_demo_datasets(tmp_path)
    train = [json.loads(line) for line in paths["knowledge"].read_text().splitlines()]
    test = [json.loads(line) for line in paths["knowledge_test"].read_text().splitlines()]
    assert len(train) == len(KNOWLEDGE_TRAIN_PHRASINGS) * KNOWLEDGE_FACTS and len(test) == KNOWLEDGE_FACTS
    trained: dict[str, str] = {}
    for row in train:
        country = next(w.strip("?.") for w in row["instruction"].split() if w[0].isupper() and w not in
                       ("What", "Which", "Name", "Tell"))
        assert trained.setdefault(country, row["output"]) == row["output"]  # one answer a fact
    for row in test:
        country = row["instruction"].split("'s capital")[0]
        assert trained[country] == row["output"]  # every test fact was trained
    assert not find_overlap(probe_file(paths["knowledge"]), probe_file(paths["knowledge_test"]))


def test_a_changed_file_is_kept_as_a_backup_before_the_demo_writes_its_own(tmp_path: Path) -> None:
    said: list[str] = []
    path = write_demo_datasets(tmp_path)["style"]
    path.write_text('{"messages": []}\n')  # the user's edit
    write_demo_datasets(tmp_path, say=said.append)
    assert path.with_name("style.jsonl.bak").read_text() == '{"messages": []}\n'
    assert "kept as" in said[0] and probe_file(path).examples > 0
    write_kept(path, "other\n")
    assert path.with_name("style.jsonl.bak2").exists() and path.read_text() == "other\n"
