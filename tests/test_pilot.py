"""The pilot: the candidates and their budget before anything starts, a decision that names a winner only when
the tests do and otherwise keeps the advice, sweeps, and a whole pilot on a tiny model whose runs are ordinary
run directories scored on the validation split, never the test split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from advisor.answers import answers_from_dict, answers_to_dict, load_answers
from advisor.pilot import Candidate, decide, plan_pilot, run_pilot
from knowledge.errors import InputError
from runner.tiny_model import build_tiny_model
from tests.runner_helpers import qa_rows, tiny_texts, write_data


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "llama", tiny_texts())


def answers(tmp_path: Path, model: Path, **overrides: Any) -> Any:
    data = write_data(tmp_path / "qa.jsonl", qa_rows())
    raw = {"version": 1, "goal": "knowledge", "data": {"path": str(data)}, "model": {"name_or_path": str(model)},
           "hardware": {"gpus": [], "ram_gb": 16}, "overrides": overrides}
    return answers_from_dict(raw, source=tmp_path / "a.yaml")


def comparison(tuned: list[float], pairs: list[tuple[int, int, float, float]], omnibus_p: float | None) -> Any:
    names = [f"m{i}" for i in range(len(tuned))]
    return {"metric": "fact_match", "test_examples": 40,
            "runs": [{"name": n, "tuned": t, "base": 0.1} for n, t in zip(names, tuned, strict=True)],
            "omnibus": None if omnibus_p is None else {"p_value": omnibus_p,
                                                       "sentence": f"Cochran's Q, p = {omnibus_p}"},
            "pairwise": [{"a": names[i], "b": names[j], "effect_b_minus_a": e, "p_holm": p} for i, j, e, p in pairs]}


def messages(path: Path) -> list[str]:
    """Each example of a split file, as its messages (the split files also number their examples)."""
    return [json.dumps(json.loads(line)["messages"]) for line in path.read_text().splitlines()]


CANDIDATES = [Candidate("lora", "lora", estimate_s=60, advised=True), Candidate("qlora", "qlora", estimate_s=90),
              Candidate("dora", "dora", estimate_s=30)]


def test_a_winner_is_named_only_when_it_beats_every_other_candidate() -> None:
    clear = comparison([0.5, 0.9, 0.4], [(0, 1, 0.4, 0.01), (0, 2, -0.1, 0.5), (1, 2, -0.5, 0.003)], 0.001)
    decision = decide(clear, CANDIDATES)
    assert decision["decided"] and decision["winner"] == "qlora" and decision["method"] == "qlora"
    # the best scorer, but not significantly better than the third: no winner, the advice stands
    close = comparison([0.5, 0.9, 0.8], [(0, 1, 0.4, 0.01), (0, 2, 0.3, 0.04), (1, 2, -0.1, 0.6)], 0.002)
    decision = decide(close, CANDIDATES)
    assert not decision["decided"] and decision["winner"] is None
    assert decision["method"] == "dora"  # the recommended lora was beaten by the best: of those tied, the quickest
    assert decision["why"].startswith("qlora scored highest (0.900 fact_match), but on 40 validation examples it is "
                                      "not significantly better than dora; the other 1 did significantly worse")
    assert "the advised lora did significantly worse than the best" in decision["why"]
    # an omnibus test that finds nothing: no pair is looked at, so the advice stays
    flat = comparison([0.5, 0.7, 0.6], [(0, 1, 0.2, 0.04), (0, 2, 0.1, 0.5), (1, 2, -0.1, 0.5)], 0.2)
    decision = decide(flat, CANDIDATES)
    assert not decision["decided"] and decision["method"] == "lora"  # not contradicted: the advice stays
    assert decision["why"].startswith("the candidates cannot be told apart on 40 validation examples (Cochran's Q")


def test_the_plan_names_its_candidates_and_budget_and_refuses_what_cannot_be_compared(tmp_path: Path,
                                                                                     tiny: Path) -> None:
    plan = plan_pilot(answers(tmp_path, tiny), allow_network=False)
    methods = [c.method for c in plan.candidates]
    assert methods[0] == plan.recommendation.method == "lora" and len(methods) == 3 and len(set(methods)) == 3
    assert all(c.estimate_s > 0 and "tokens" in c.estimate for c in plan.candidates)
    assert plan.steps <= 30 and "the test split is not touched" in plan.lines()[0]
    # the budget, evaluation included, is stated before anything starts
    assert all(c.evaluation_s > 0 for c in plan.candidates)
    assert all(line.startswith(f"  {c.label}: training ") and line.endswith(f"; then evaluation about "
                                                                            f"{c.evaluation_s:.0f} s")
               for c, line in zip(plan.candidates, plan.lines()[1:], strict=False))
    assert plan.lines()[-1].startswith("  in all: about") and " evaluating, " in plan.lines()[-1]
    sweep = plan_pilot(answers(tmp_path, tiny), sweep="learning_rate", allow_network=False)
    rate = sweep.recommendation.hyperparameters["learning_rate"]
    assert [c.settings["learning_rate"] for c in sweep.candidates] == pytest.approx([rate * 0.3, rate, rate * 3])
    given = plan_pilot(answers(tmp_path, tiny), sweep="lora_rank=4,16", allow_network=False)
    assert [c.settings for c in given.candidates] == [{"lora_rank": 4}, {"lora_rank": 16}]
    for bad in ("epochs", "learning_rate=5", "lora_rank=8,8"):  # not swept; out of range; one value
        with pytest.raises(InputError) as err:
            plan_pilot(answers(tmp_path, tiny), allow_network=False, sweep=bad)
        assert err.value.key == "--sweep"
    with pytest.raises(InputError) as err:
        plan_pilot(answers(tmp_path, tiny, method="lora"), allow_network=False)
    assert err.value.key == "overrides.method"


def test_the_methods_named_are_the_candidates_when_each_is_one_this_tool_trains(tmp_path: Path, tiny: Path) -> None:
    plan = plan_pilot(answers(tmp_path, tiny), methods=["prefix", "lora", "ia3", "lora"], allow_network=False)
    assert [c.method for c in plan.candidates] == ["prefix", "lora", "ia3"]  # in the order given, once each
    assert [c.advised for c in plan.candidates] == [False, True, False]  # the recommendation's own choice
    assert all(c.estimate_s > 0 for c in plan.candidates)
    # the first measures the base; the later ones read it back, so their evaluation leaves it out (all three
    # methods' calls cost what the base's do on the CPU)
    first, second, third = (c.evaluation_s for c in plan.candidates)
    assert second == pytest.approx(third) and second < first
    for bad, says in ((["lora", "adalora"], "'adalora' is not a method"), (["lora"], "two or more methods")):
        with pytest.raises(InputError) as err:
            plan_pilot(answers(tmp_path, tiny), methods=bad, allow_network=False)
        assert err.value.key == "--methods" and says in str(err.value)
    with pytest.raises(InputError, match="goes without --sweep"):
        plan_pilot(answers(tmp_path, tiny), methods=["lora", "dora"], sweep="learning_rate", allow_network=False)
    # named methods are checked before the model and data are: a wrong option is said first
    no_data = answers_from_dict({"version": 1, "goal": "knowledge", "data": {"examples": 100},
                                 "model": {"name_or_path": str(tiny)}})
    with pytest.raises(InputError) as err:
        plan_pilot(no_data, methods=["lora", "nope"], allow_network=False)
    assert err.value.key == "--methods"
    # a method fixed in the answers does not stop the user from naming the candidates
    fixed = plan_pilot(answers(tmp_path, tiny, method="dora"), methods=["lora", "dora"], allow_network=False)
    assert [(c.method, c.advised) for c in fixed.candidates] == [("lora", False), ("dora", True)]


def test_a_pilot_on_hardware_where_nothing_fits_says_so_and_blames_no_option(tmp_path: Path, tiny: Path) -> None:
    raw = answers_to_dict(answers(tmp_path, tiny))
    raw["hardware"] = {"gpus": [], "ram_gb": 2}  # all of it kept for the system
    cramped = answers_from_dict(raw, source=tmp_path / "a.yaml")
    for sweep in (None, "learning_rate"):
        with pytest.raises(InputError) as err:
            plan_pilot(cramped, allow_network=False, sweep=sweep)
        assert "does not fit here" in str(err.value) and "nothing to pilot" in str(err.value)
        assert err.value.key is None
    with pytest.raises(InputError) as err:
        plan_pilot(cramped, methods=["lora", "prefix"], allow_network=False)
    assert err.value.key == "--methods" and "lora does not fit here" in str(err.value)


def test_a_pilot_trains_each_candidate_and_scores_them_on_the_validation_split(tmp_path: Path, tiny: Path) -> None:
    plan = plan_pilot(answers(tmp_path, tiny, batch_size=4, gradient_accumulation=1), alternatives=1, steps=4,
                      allow_network=False)
    said: list[str] = []
    result = run_pilot(plan, str(tmp_path / "runs"), allow_network=False, say=said.append)
    folder = Path(result["pilot"])
    validation = (folder / "data" / "validation.jsonl").read_text()
    assert len(result["candidates"]) == 2 and said[0].startswith("pilot: 2 methods, 4 steps each")
    # the validation split counted before the start is the one the candidates are scored on
    assert plan.validation == len(validation.splitlines()) and f"on the {plan.validation} examples" in said[0]
    # after the first candidate, the estimates of the rest, scaled by how the first came out against its own
    first = result["candidates"][0]["label"]
    assert any(line.startswith(f"pilot: {first} took ") and "estimated" in line and "left for 1 more" in line
               for line in said)
    assert all(c["evaluation_seconds"] > 0 and c["estimated_evaluation_s"] > 0 for c in result["candidates"])
    # the base model is measured once: the second candidate's base outputs are the first's, read back, and said so
    first_run, second_run = (Path(c["run"]) for c in result["candidates"])
    outputs = [[json.loads(line)["output"] for line in (run / "eval" / "predictions-base.jsonl").read_text(
        ).splitlines()] for run in (first_run, second_run)]
    assert outputs[0] == outputs[1] and len(outputs[0]) == plan.validation
    assert "base_measured_for_an_earlier_run" not in json.loads((first_run / "report.json").read_text())["speed"]
    assert json.loads((second_run / "report.json").read_text())["speed"]["base_measured_for_an_earlier_run"] == \
        str(folder / "base-measurements.json")
    assert sum("measured for an earlier run" in line for line in said) == 1
    for candidate in result["candidates"]:
        run = Path(candidate["run"])
        assert (run / "report.json").is_file() and (run / "plan.json").is_file()  # an ordinary run directory
        assert messages(run / "data" / "test.jsonl") == messages(folder / "data" / "validation.jsonl")  # scored on
        # the full data's validation split ...
        report = json.loads((run / "report.json").read_text())
        assert report["speed"]["ratio"] is None  # (no timing rounds in a pilot)
        held = set(messages(folder / "data" / "test.jsonl"))
        assert held and not set(messages(run / "data" / "train.jsonl")) & held  # ... never trained on its test split
    assert result["comparison"]["test_examples"] == len(validation.splitlines())
    assert result["decision"]["method"] in {c["method"] for c in result["candidates"]}
    winner = load_answers(result["winner_answers"])  # one command trains the choice in full
    assert winner.overrides["method"] == result["decision"]["method"]
    assert winner.data.path == str(tmp_path / "qa.jsonl")
    assert result["next"] == f"finetune-advisor train --answers {result['winner_answers']}"
    md = (folder / "pilot.md").read_text()
    assert "| candidate |" in md and result["decision"]["why"][1:] in md
    assert yaml.safe_load((folder / "winner.yaml").read_text())["overrides"]["batch_size"] == 4
