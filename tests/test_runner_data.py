"""Training data: loss only on answers, chat template or plain template, truncation counts, the eval prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from knowledge.errors import InputError
from runner.data import PLAIN_HEADERS, encode_rows, load_rows, prompt_and_reference, render_segments
from runner.rundir import RunDir
from runner.tiny_model import build_tiny_model
from tests.runner_helpers import tiny_texts, write_data

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Peru?"},
                {"role": "assistant", "content": "Lima."}]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("tok")
    chat = build_tiny_model(root / "chat", tiny_texts() + ["Paris Lima France Peru capital brief"])
    plain = build_tiny_model(root / "plain", tiny_texts(), chat_template=False)
    return {"chat": AutoTokenizer.from_pretrained(chat), "plain": AutoTokenizer.from_pretrained(plain)}


def _trained_text(row: dict[str, Any], tokenizer: Any) -> str:
    [encoded], _ = encode_rows([row], tokenizer, 4096)
    kept = [t for t, label in zip(encoded["input_ids"], encoded["labels"], strict=True) if label != -100]
    return str(tokenizer.decode(kept))


@pytest.mark.parametrize("kind", ["chat", "plain"])
def test_only_the_answers_carry_loss(tokenizers: dict[str, Any], kind: str) -> None:
    tok = tokenizers[kind]
    trained = _trained_text({"messages": CONVERSATION}, tok)
    assert "Paris." in trained and "Lima." in trained and tok.eos_token in trained
    for prompt_text in ("Capital of France?", "And of Peru?", "Be brief."):
        assert prompt_text not in trained


def test_the_chat_template_is_used_when_the_tokenizer_has_one(tokenizers: dict[str, Any]) -> None:
    chat = "".join(t for t, _ in render_segments(CONVERSATION, tokenizers["chat"]))
    plain = "".join(t for t, _ in render_segments(CONVERSATION, tokenizers["plain"]))
    assert chat == tokenizers["chat"].apply_chat_template(CONVERSATION, tokenize=False)
    assert "<|assistant|>" in chat and PLAIN_HEADERS["assistant"] not in chat
    assert plain.startswith("<s>") and PLAIN_HEADERS["user"] + "Capital of France?" in plain


def test_plain_text_rows_train_on_every_token(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["plain"]
    [encoded], _ = encode_rows([{"text": "the cat sat"}], tok, 4096)
    assert encoded["labels"] == encoded["input_ids"]


def test_truncation_is_counted_and_answerless_examples_are_dropped(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["plain"]
    short = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}
    long_answer = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "word " * 200}]}
    long_prompt = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}
    rows, stats = encode_rows([short, long_answer, long_prompt], tok, 48)
    assert (stats.examples, stats.truncated, stats.dropped) == (3, 2, 1)
    assert len(rows) == 2 and all(len(r["input_ids"]) <= 48 for r in rows)


@pytest.mark.parametrize("kind", ["chat", "plain"])
def test_the_evaluation_prompt_never_contains_the_reference(tokenizers: dict[str, Any], kind: str) -> None:
    prompt, reference = prompt_and_reference({"messages": CONVERSATION}, tokenizers[kind])
    assert reference == "Lima."
    assert "Lima" not in prompt and "And of Peru?" in prompt and "Paris." in prompt
    full = "".join(t for t, _ in render_segments(CONVERSATION, tokenizers[kind]))
    assert full.startswith(prompt)  # training and evaluation render the context the same way


def test_load_rows_lists_unusable_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n{broken\n{"instruction": "d", '
                    '"output": ""}\n')
    with pytest.raises(InputError) as err:
        load_rows(str(path), None)
    message = str(err.value)
    assert "3 example(s) cannot be used" in message and "line 2" in message and "line 3" in message
    assert "line 4: the answer is empty" in message and err.value.line == 2


def test_load_rows_in_every_layout(tmp_path: Path) -> None:
    rows, layout = load_rows(str(write_data(tmp_path / "a.jsonl", [{"instruction": "q", "input": "ctx",
                                                                      "output": "a"}])), None)
    assert layout == "alpaca" and rows[0]["messages"][0] == {"role": "user", "content": "q\n\nctx"}
    rows, layout = load_rows(str(write_data(tmp_path / "t.jsonl", [{"text": "plain words"}])), None)
    assert layout == "text" and rows == [{"text": "plain words"}]


def test_an_unreachable_hub_dataset_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError, match="cannot load the dataset 'someone/data' from the hub"):
        load_rows("someone/data", None)


# --------------------------------------------------------------------------- splits that measure the goal

def _split(tmp_path: Path, rows: list[dict[str, Any]], goal: str = "knowledge", **data: Any) -> RunDir:
    from runner.data import prepare_splits
    from runner.plan import Plan, PlanData, PlanModel

    tmp_path.mkdir(exist_ok=True)
    path = write_data(tmp_path / "data.jsonl", rows)
    plan = Plan(goal=goal, method="lora", method_family="lora", model=PlanModel("unused"),
                data=PlanData(path=str(path), **data), hyperparameters={}, seed=3)
    run = RunDir(tmp_path / "run")
    prepare_splits(plan, run)
    return run


def _answers(run: RunDir, name: str) -> list[str]:
    from runner.data import answer_text, read_split

    return [answer_text(r) for r in read_split(run, name)]


def _phrasings(facts: int, each: int) -> list[dict[str, Any]]:
    forms = ["What is the code of item {i}?", "Tell me item {i}'s code.", "Item {i}: which code?",
             "Which code does item {i} have?", "Give the code for item {i}."]
    return [{"instruction": forms[k].format(i=i), "input": "", "output": f"Item {i} has code K{i * 7}."}
            for i in range(facts) for k in range(each)]


def test_knowledge_tests_new_phrasings_of_facts_that_stay_in_training(tmp_path: Path) -> None:
    from runner.data import read_split_summary

    run = _split(tmp_path, _phrasings(30, 3))
    train, test, validation = _answers(run, "train"), _answers(run, "test"), _answers(run, "validation")
    assert len(test) == 9 and len(validation) == 9 and len(train) == 72
    assert set(test) <= set(train) and set(validation) <= set(train)  # every held-out fact is still taught
    assert len(set(test)) == 9                                         # one phrasing a fact: as many facts as can be
    summary = read_split_summary(run)
    assert summary is not None
    assert (summary["test_facts"], summary["test_facts_seen_in_training"], summary["held_out_by_fact"]) == (9, 9, True)


def test_duplicates_are_removed_before_splitting(tmp_path: Path) -> None:
    from runner.data import read_split, read_split_summary

    rows = _phrasings(40, 1)
    repeated = rows + [dict(r, output=r["output"].upper()) for r in rows[:10]]  # the same examples, case aside
    run = _split(tmp_path, repeated, goal="style")
    seen = [json.dumps(r["messages"]).lower() for name in ("train", "validation", "test")
            for r in read_split(run, name)]
    assert len(seen) == 40 and len(set(seen)) == 40
    summary = read_split_summary(run)
    assert summary is not None and summary["duplicates_removed"] == 10 and summary["test_facts"] is None


def test_one_question_per_fact_tests_unseen_facts_and_says_so(tmp_path: Path) -> None:
    from runner.data import read_split_summary

    run = _split(tmp_path, _phrasings(40, 1))
    summary = read_split_summary(run)
    assert summary is not None and summary["held_out_by_fact"] is False
    assert (summary["test_facts"], summary["test_facts_seen_in_training"]) == (4, 0)
    assert not set(_answers(run, "test")) & set(_answers(run, "train"))


def test_a_group_field_names_the_fact(tmp_path: Path) -> None:
    rows = [{"instruction": f"Question {k} about fact {i}?", "input": "", "output": f"Answer worded {k} for {i}.",
             "fact": f"f{i}"} for i in range(20) for k in range(2)]
    run = _split(tmp_path, rows, group_by="fact")
    from runner.data import read_split

    groups = {name: {r["group"] for r in read_split(run, name)} for name in ("train", "test")}
    assert groups["test"] and groups["test"] <= groups["train"]
    with pytest.raises(InputError, match="'fact' field") as error:
        _split(tmp_path / "bad", [{k: v for k, v in rows[0].items() if k != "fact"}, *rows[1:]], group_by="fact")
    assert error.value.line == 1
