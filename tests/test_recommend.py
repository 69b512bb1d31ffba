"""The recommendation: every decision rule as a scenario, memory fit and fallback, warnings, overrides."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from advisor.answers import answers_from_dict, load_answers
from advisor.estimate import EstimateConfig, estimate_memory
from advisor.recommend import Recommendation, gather_inputs, recommend
from knowledge.errors import InputError
from tests.conftest import EXAMPLES, write_jsonl


def answers(goal: str = "knowledge", model: str = "Qwen/Qwen2.5-7B-Instruct", gpu_gb: float | None = 80,
            examples: int = 4000, **extra: Any) -> dict[str, Any]:
    gpus = [] if gpu_gb is None else [{"name": "NVIDIA A100-SXM4-80GB" if gpu_gb == 80 else "Some GPU",
                                       "memory_gb": gpu_gb}]
    return {"version": 1, "goal": goal, "data": {"examples": examples}, "model": {"name_or_path": model},
            "hardware": {"gpus": gpus, "ram_gb": 32}, **extra}


def rec(raw: dict[str, Any]) -> Recommendation:
    return recommend(gather_inputs(answers_from_dict(raw), detect=False, allow_network=False))


# (scenario, answers, expected method, expected rules in order)
SCENARIOS = [
    ("style", answers("style", "Qwen/Qwen2.5-0.5B-Instruct", 24, 1000), "p_tuning_v2", ["S1"]),
    ("knowledge", answers("knowledge"), "lora", ["K1"]),
    ("reasoning", answers("reasoning", "meta-llama/Llama-3.1-8B-Instruct", 80, 6000), "lora", ["R1"]),
    ("agent", answers("agent", "meta-llama/Llama-3.2-3B-Instruct", 24, 2000), "lora", ["A1"]),
    ("quick experiment", answers(priority="speed"), "p_tuning_v2", ["K1", "P1"]),
    ("memory first", answers(priority="memory"), "qlora", ["K1", "P2"]),
    ("edge deployment", answers(deploy="edge"), "qlora", ["K1", "H2"]),
    ("edge beats a speed priority", answers("style", "Qwen/Qwen2.5-0.5B-Instruct", 24, 1000, deploy="edge",
                                            priority="speed"), "qlora", ["S1", "P1", "H2"]),
    ("memory tight", answers(gpu_gb=16), "qlora", ["K1", "H1"]),
    ("nothing fits: smaller model", answers(model="Qwen/Qwen2.5-14B-Instruct", gpu_gb=8), "qlora",
     ["K1", "H1", "H3"]),
    ("large data, plenty of memory", answers(model="meta-llama/Llama-3.2-1B-Instruct", examples=20000), "lora",
     ["K1", "F1"]),
    ("CPU only", answers("style", "HuggingFaceTB/SmolLM2-135M-Instruct", None, 800), "p_tuning_v2", ["S1"]),
]


@pytest.mark.parametrize(("raw", "method", "rules"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_decision_table_scenarios(raw: dict[str, Any], method: str, rules: list[str]) -> None:
    result = rec(raw)
    assert result.method == method
    assert result.rules_applied == rules
    assert len(result.reasons) >= len([r for r in rules if r != "H3"])


def test_the_json_has_the_design_contract_keys() -> None:
    result = rec(answers())
    assert {"method", "alternatives", "hyperparameters", "memory", "time", "reasons", "warnings",
            "rules_applied"} <= set(result.to_json())
    assert {"learning_rate", "epochs", "lora_rank", "lora_alpha", "batch_size", "gradient_accumulation",
            "max_length"} <= set(result.hyperparameters)
    assert set(result.memory["breakdown"]) == {"weights", "trainable_and_optimizer", "activations", "overhead"}
    assert {"estimated_gb", "available_gb", "fits"} <= set(result.memory)
    assert {"estimated_hours", "basis"} <= set(result.time)
    assert all({"method", "why_not"} <= set(a) for a in result.alternatives)
    json.dumps(result.to_json())


def test_the_same_answers_give_the_same_recommendation() -> None:
    assert rec(answers(deploy="edge")) == rec(answers(deploy="edge"))


def test_memory_fit_picks_the_largest_batch_that_fits() -> None:
    result = rec(answers(model="Qwen/Qwen2.5-1.5B-Instruct", gpu_gb=24))
    hp, mem = result.hyperparameters, result.memory
    assert mem["fits"] and mem["estimated_gb"] <= mem["usable_gb"] == pytest.approx(24 / (1 + mem["relative_error"]),
                                                                                    abs=0.01)
    # the estimate at its measured worst still fits, and the recommendation says by how much it may be off
    assert mem["estimated_gb"] + mem["uncertainty_gb"] <= 24 + 0.01
    assert f"± {mem['uncertainty_gb']:g} of 24 GB" in mem["summary"] and mem["error_basis"]
    if hp["batch_size"] < 8:  # the next larger batch, same settings, would not fit
        from advisor.model_profile import profile_model

        bigger = EstimateConfig("lora", batch_size=hp["batch_size"] * 2, seq_len=hp["max_length"],
                                gradient_checkpointing=hp["gradient_checkpointing"], lora_rank=hp["lora_rank"])
        assert estimate_memory(profile_model("Qwen/Qwen2.5-1.5B-Instruct"), bigger).estimated_gb > mem["usable_gb"]
    assert hp["batch_size"] * hp["gradient_accumulation"] >= 8


def test_memory_tight_falls_back_and_says_why() -> None:
    result = rec(answers(gpu_gb=16))
    [lora] = [a for a in result.alternatives if a["method"] == "lora"]
    assert "needs" in lora["why_not"] and lora["fits"] is False
    assert any("memory tight" in r and "H1" in r for r in result.reasons)


def test_when_nothing_fits_the_size_that_would_is_named() -> None:
    result = rec(answers(model="Qwen/Qwen2.5-14B-Instruct", gpu_gb=8))
    assert result.memory["fits"] is False
    [warning] = [w for w in result.warnings if "H3" in w]
    size = float(warning.split("at most about ")[1].split("B")[0])
    assert 1 < size < 14


def test_full_fine_tuning_is_offered_for_large_data() -> None:
    result = rec(answers(model="meta-llama/Llama-3.2-1B-Instruct", examples=20000))
    assert any(a["method"] == "full" and a["fits"] for a in result.alternatives)


def test_reasoning_gets_a_higher_rank_that_grows_with_data() -> None:
    small = rec(answers("reasoning", "meta-llama/Llama-3.1-8B-Instruct", 80, 6000))
    large = rec(answers("reasoning", "meta-llama/Llama-3.1-8B-Instruct", 80, 15000))
    knowledge = rec(answers("knowledge", "meta-llama/Llama-3.1-8B-Instruct", 80, 6000))
    assert knowledge.hyperparameters["lora_rank"] < small.hyperparameters["lora_rank"] < \
        large.hyperparameters["lora_rank"] <= 64
    assert large.hyperparameters["lora_alpha"] == 2 * large.hyperparameters["lora_rank"]


@pytest.mark.parametrize(("examples", "epochs"), [(500, 10), (1500, 6), (4000, 3), (50000, 3)])
def test_epochs_grow_as_data_shrinks_within_3_to_10(examples: int, epochs: int) -> None:
    assert rec(answers(examples=examples)).hyperparameters["epochs"] == epochs


@pytest.mark.parametrize(
    ("goal", "examples", "words"),
    [
        ("knowledge", 300, ["300 examples is too few to inject knowledge", "retrieval"]),
        ("style", 100, ["few for style adaptation"]),
        ("reasoning", 50000, ["above the advised 5000-20000"]),
    ],
)
def test_data_outside_the_advised_range_warns_and_says_why(goal: str, examples: int, words: list[str]) -> None:
    text = " ".join(rec(answers(goal, "meta-llama/Llama-3.2-1B-Instruct", 80, examples)).warnings)
    for word in words:
        assert word in text


def test_a_user_override_is_applied_and_its_risks_are_stated() -> None:
    result = rec(answers(overrides={"method": "prefix", "learning_rate": 0.5, "epochs": 20}))
    assert result.method == "prefix"
    assert result.hyperparameters["learning_rate"] == 0.5 and result.hyperparameters["epochs"] == 20
    text = " ".join(result.warnings)
    assert "holds little new knowledge" in text
    assert "overrides.learning_rate = 0.5 is above the advised" in text
    assert "overrides.epochs = 20 is above" in text and "memorise" in text
    assert any(a["method"] == "lora" and "you chose prefix" in a["why_not"] for a in result.alternatives)


def test_an_override_that_cannot_work_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        rec(answers("style", "Qwen/Qwen2.5-0.5B-Instruct", 24, 1000, overrides={"gradient_checkpointing": True}))
    assert err.value.key == "overrides.gradient_checkpointing"


def test_a_user_fixed_method_that_does_not_fit_is_kept_with_a_warning() -> None:
    result = rec(answers(gpu_gb=16, overrides={"method": "full"}))
    assert result.method == "full" and result.memory["fits"] is False
    assert any("remove overrides.method" in w for w in result.warnings)


def test_data_is_measured_from_the_file(tmp_path: Path) -> None:
    rows = [{"instruction": f"Question {i} " + "x" * 400, "output": f"Answer {i}"} for i in range(200)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", [rows[3], {"instruction": "new", "output": "y"}])
    raw = answers(model="Qwen/Qwen2.5-0.5B-Instruct", gpu_gb=24)
    raw["data"] = {"path": "train.jsonl", "test_path": "test.jsonl"}
    (tmp_path / "a.yaml").write_text(json.dumps(raw))
    result = recommend(gather_inputs(load_answers(tmp_path / "a.yaml"), detect=False, allow_network=False))
    assert result.data["examples"] == 200 and result.data["source"] == "measured"
    assert result.data["train_examples"] == 180  # 10% validation; the test file is separate
    assert result.hyperparameters["max_length"] == 256  # about 125 tokens per example
    assert any("same prompt" in w for w in result.warnings)  # leakage into the test file
    # the evaluation after training: the 2 test examples, generating at most the longest answer (7 characters,
    # 2 tokens) plus the 16-token margin, as runner/evaluate.py sets max_new_tokens
    assert result.time["evaluation_seconds"] > 0
    assert "generate for 2 test examples (at most 18 new tokens each)" in result.time["evaluation_basis"]


def test_a_missing_data_file_names_the_answers_key(tmp_path: Path) -> None:
    raw = answers()
    raw["data"] = {"path": "nowhere.jsonl"}
    (tmp_path / "a.yaml").write_text(json.dumps(raw))
    with pytest.raises(InputError) as err:
        gather_inputs(load_answers(tmp_path / "a.yaml"), detect=False)
    assert err.value.key == "data.path" and "nowhere.jsonl" in str(err.value)


def test_a_data_file_without_usable_examples(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d.jsonl", [{"instruction": "only questions"}] * 3)
    raw = answers()
    raw["data"] = {"path": "d.jsonl", "format": "alpaca"}
    (tmp_path / "a.yaml").write_text(json.dumps(raw))
    with pytest.raises(InputError, match="no usable examples .* line 1: missing field 'output'"):
        gather_inputs(load_answers(tmp_path / "a.yaml"), detect=False)


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_example_recommends(example: Path) -> None:
    result = recommend(gather_inputs(load_answers(example), allow_network=False))
    assert result.method and result.memory["fits"] and result.reasons


def test_an_override_the_model_cannot_take_names_the_overrides_key(tmp_path: Path) -> None:
    raw = answers(model="meta-llama/Llama-3.2-1B-Instruct", overrides={"lora_targets": "q,v"})
    (tmp_path / "a.yaml").write_text(json.dumps(raw))
    with pytest.raises(InputError) as err:
        recommend(gather_inputs(load_answers(tmp_path / "a.yaml"), detect=False, allow_network=False))
    assert err.value.key == "overrides.lora_targets" and err.value.file == str(tmp_path / "a.yaml")
    assert "q_proj" in str(err.value)


def test_a_big_model_on_the_cpu_warns_about_the_time() -> None:
    result = rec(answers(gpu_gb=None, model="Qwen/Qwen2.5-1.5B-Instruct"))
    assert result.hardware["device"] == "cpu"
    assert any("training on the CPU would take about" in w for w in result.warnings)


def test_a_relative_model_folder_is_found_next_to_the_answers_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   tiny_llama_dir: Path) -> None:
    raw = answers(model="./tiny-llama", gpu_gb=24)
    (tmp_path / "a.yaml").write_text(json.dumps(raw))
    monkeypatch.chdir("/")
    result = recommend(gather_inputs(load_answers(tmp_path / "a.yaml"), detect=False, allow_network=False))
    assert result.model["source"] == "folder" and result.model["name"] == str(tiny_llama_dir)


# --------------------------------------------------------------------------- the test split, said before training

def _with_file(tmp_path: Path, goal: str, rows: list[dict[str, Any]], **data: Any) -> Recommendation:
    write_jsonl(tmp_path / "train.jsonl", rows)
    raw = answers(goal, "Qwen/Qwen2.5-0.5B-Instruct", 24)
    raw["data"] = {"path": "train.jsonl", **data}
    (tmp_path / "a.yaml").write_text(json.dumps(raw))
    return recommend(gather_inputs(load_answers(tmp_path / "a.yaml"), detect=False, allow_network=False))


def test_one_question_per_fact_is_named_before_training_with_what_to_do() -> None:
    raw = answers("knowledge", "HuggingFaceTB/SmolLM2-135M-Instruct", None)
    raw["data"] = {"path": str(EXAMPLES / "data" / "product_faq.jsonl")}
    result = rec(raw)
    [facts] = [w for w in result.warnings if "asked once" in w]
    assert "cannot be evaluated" in facts and "phrasings" in facts and "data.test_path" in facts
    # 50 examples hold out 5: no test can show anything, and the warning says what size would
    assert result.evaluation["test_examples"] == 5 and result.evaluation["smallest_detectable"] is None
    [power] = [w for w in result.warnings if w.startswith("test split")]
    assert "inconclusive" in power and "39 examples" in power and "390 examples" in power


def test_several_phrasings_a_fact_are_held_out_and_the_power_is_stated(tmp_path: Path) -> None:
    rows = [{"instruction": f"Form {k} of question {i}?", "output": f"Fact number {i}."}
            for i in range(200) for k in range(3)]
    result = _with_file(tmp_path, "knowledge", rows)
    assert not any("asked once" in w for w in result.warnings)
    assert result.evaluation["test_examples"] == 60 and "new phrasings" in result.evaluation["test_source"]
    assert result.evaluation["smallest_detectable"] == pytest.approx(0.13, abs=0.01)  # binary: fact_match
    assert any(r.startswith("test split: 60 examples") for r in result.reasons)
    assert result.evaluation["suggested_test_examples"] is None


def test_a_continuous_metric_states_the_effect_size_it_can_show(tmp_path: Path) -> None:
    rows = [{"instruction": f"Write note {i}.", "output": f"Dear reader, note {i} is here."} for i in range(150)]
    result = _with_file(tmp_path, "style", rows)
    e = result.evaluation
    assert (e["primary_metric"], e["kind"], e["test_examples"]) == ("rouge_l", "continuous", 15)
    assert e["smallest_detectable"] == pytest.approx(2.8016 / 15 ** 0.5, abs=1e-3)  # above 0.5: coarse
    assert e["suggested_test_examples"] == 32 and any("A test of 32 examples" in w for w in result.warnings)


def test_a_test_file_that_asks_untrained_facts_is_named(tmp_path: Path) -> None:
    rows = [{"instruction": f"Form {k} of question {i}?", "output": f"Fact number {i}."}
            for i in range(50) for k in range(2)]
    write_jsonl(tmp_path / "test.jsonl", [{"instruction": "New form of question 3?", "output": "Fact number 3."},
                                          {"instruction": "Question never taught?", "output": "Fact number 99."}])
    result = _with_file(tmp_path, "knowledge", rows, test_path="test.jsonl")
    assert any("1 of its 2 facts are not in" in w for w in result.warnings)


def test_memory_holds_the_data_s_real_batches_not_batch_x_max_length(tmp_path: Path) -> None:
    """Short examples packed 8 a batch: the estimate holds the run's largest batch of them (from the measured
    lengths), far below 8 x 256 tokens padded, and states the worst case (the longest examples together)."""
    rows = [{"instruction": f"What is item {i} made of?", "output": f"Item {i} is made of recycled steel."}
            for i in range(60)] + [{"instruction": "Describe the warranty.", "output": "long " * 150}]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    raw = answers("style", "HuggingFaceTB/SmolLM2-135M-Instruct", None, data={"path": str(data)},
                  overrides={"method": "lora", "batch_size": 8, "max_length": 256, "packing": True})
    result = rec(raw)
    padded = estimate_memory(_profile("HuggingFaceTB/SmolLM2-135M-Instruct"),
                             EstimateConfig("lora", batch_size=8, seq_len=256, device="cpu"))
    mem = result.memory
    assert 8 * 20 < mem["batch_tokens"] <= mem["worst_batch_tokens"] < 8 * 256
    assert mem["estimated_gb"] <= mem["worst_case_gb"] < padded.estimated_gb - 0.3
    assert "simulated" in mem["batch_basis"] and f"{mem['worst_batch_tokens']:,}" in mem["batch_basis"]
    # packing off: the batch is padded to its longest example, so the same data needs more
    unpacked = rec({**raw, "overrides": {**raw["overrides"], "packing": False}})
    assert unpacked.memory["batch_tokens"] > mem["batch_tokens"]
    assert unpacked.time["tokens"] > unpacked.time["trained_tokens"]  # padding is computed too


def test_the_time_reads_as_a_sentence_with_the_formula_apart() -> None:
    result = rec(answers("style", "HuggingFaceTB/SmolLM2-135M-Instruct", None, 800))
    assert re.match(r"about [\d.]+ (min|h): [\d,]+ tokens at about [\d,]+ tokens/s on \d+ CPU cores?[;,] ",
                    result.time["basis"])
    assert "GFLOP per token" in result.time["formula"] and "GFLOP" not in result.time["basis"]


def _profile(name: str) -> Any:
    from advisor.model_profile import profile_model

    return profile_model(name, allow_network=False)


@pytest.mark.parametrize(("bf16", "method", "expected"), [(True, "lora", "bf16"), (False, "lora", "fp32"),
                                                          (True, "qlora", "fp32"), (None, "lora", "fp32")])
def test_the_cpu_trains_in_bf16_only_where_it_has_bf16_units(bf16: bool | None, method: str, expected: str) -> None:
    from advisor.hardware import Hardware
    from advisor.settings import precision_for

    assert precision_for(method, "cpu", Hardware(cpu_cores=2, cpu_bf16=bf16)) == expected


def test_precision_follows_the_hardware_and_the_answers_override_it() -> None:
    from dataclasses import replace

    raw = answers("style", "HuggingFaceTB/SmolLM2-135M-Instruct", None, 800, overrides={"method": "lora"})
    inputs = gather_inputs(answers_from_dict(raw), detect=False, allow_network=False)
    with_units = recommend(replace(inputs, hardware=replace(inputs.hardware, cpu_bf16=True, cpu_cores=2)))
    without = recommend(replace(inputs, hardware=replace(inputs.hardware, cpu_bf16=False, cpu_cores=2)))
    assert with_units.hyperparameters["precision"] == "bf16" and without.hyperparameters["precision"] == "fp32"
    assert with_units.time["seconds"] < without.time["seconds"]
    assert with_units.memory["detail"]["block_activations"] < without.memory["detail"]["block_activations"]
    forced = recommend(replace(gather_inputs(answers_from_dict({**raw, "overrides": {"method": "lora",
                                                                                      "precision": "fp32"}}),
                                             detect=False, allow_network=False),
                               hardware=replace(inputs.hardware, cpu_bf16=True, cpu_cores=2)))
    assert forced.hyperparameters["precision"] == "fp32"


def test_the_rule_applied_shows_its_evidence_and_a_contradicting_measurement_is_said() -> None:
    """knowledge/evidence.yaml: the guide's rule, the published results and the project's own measurement beside
    the rule that chose the method; where the measurement disagrees, a warning in words suggests the pilot."""
    import dataclasses

    import knowledge.evidence as evidence

    agent = rec(answers(goal="agent"))
    [a1] = [e for e in agent.evidence if e["rule"] == "A1"]
    assert a1["agrees"] is True and "lora 0.917" in a1["measured"] and "PEFT method comparison" in a1["published"]
    assert not any("pilot" in w for w in agent.warnings)
    known = evidence.load_evidence()
    measured = known.rules["A1"].measured
    assert measured is not None
    contradicted = dataclasses.replace(known, rules={**known.rules, "A1": dataclasses.replace(
        known.rules["A1"], measured=dataclasses.replace(measured, best=["dora"]))})
    evidence.load_evidence.cache_clear()
    try:
        import unittest.mock

        with unittest.mock.patch.object(evidence, "load_evidence", lambda: contradicted):
            warned = rec(answers(goal="agent"))
    finally:
        evidence.load_evidence.cache_clear()
    [a1] = [e for e in warned.evidence if e["rule"] == "A1"]
    assert a1["agrees"] is False and warned.method == "lora"  # the rule stays as the guide states it
    assert any("rule A1 advises lora, but the project's own measurement" in w and "found dora better" in w
               and "finetune-advisor pilot" in w for w in warned.warnings)
