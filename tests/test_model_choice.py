"""Choosing the base model: the largest catalog models that fit the hardware with their recommended method, each
with its licence; a licence that does not allow the stated use leaves a model out, and the recommendation and the
report say so when it was chosen anyway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.answers import answers_from_dict
from advisor.model_choice import suggest_models
from advisor.recommend import gather_inputs, recommend
from knowledge import load_model_choices

SCRIPT = Path(sys.executable).parent / "finetune-advisor"


def answers(gpus: list[dict[str, Any]], ram_gb: float = 32, **extra: Any) -> Any:
    return answers_from_dict({"version": 1, "goal": "knowledge", "data": {"examples": 2000},
                              "model": {"name_or_path": "gpt2"}, "hardware": {"gpus": gpus, "ram_gb": ram_gb},
                              **extra})


def test_every_catalog_model_says_its_licence_context_and_source() -> None:
    choices = {c.id: c for c in load_model_choices().values()}
    # the families users start from (issue 22), small to 70B
    assert {"HuggingFaceTB/SmolLM2-1.7B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen3-8B", "Qwen/Qwen3-32B",
            "meta-llama/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.3-70B-Instruct",
            "mistralai/Mistral-Nemo-Instruct-2407", "mistralai/Mistral-Small-24B-Instruct-2501", "google/gemma-3-1b-it",
            "microsoft/phi-4"} <= set(choices)
    for c in choices.values():
        assert c.params_b > 0 and c.context_length >= 1024 and c.source.startswith("https://")
        assert c.licence.name and isinstance(c.licence.commercial, bool)
    assert not choices["Qwen/Qwen2.5-3B-Instruct"].licence.commercial  # the Qwen Research License
    assert "700 million monthly active users" in (choices["meta-llama/Llama-3.1-8B-Instruct"].licence.condition or "")


def test_each_catalog_models_stated_size_agrees_with_its_shapes() -> None:
    # the size comes from the model card, the shapes from config.json: a mistyped shape (or size) shows here
    from advisor.model_profile import profile_model

    for c in load_model_choices().values():
        counted = profile_model(c.id, allow_network=False).params_b
        assert counted == pytest.approx(c.params_b, rel=0.05), c.id


def test_a_24_gb_card_for_commercial_use_gets_the_largest_models_that_fit_and_allow_it() -> None:
    fitting, left_out = suggest_models(answers([{"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24}],
                                               use="commercial"))
    sizes = [s.model.params_b for s in fitting]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] >= 7  # a 7-8B model fits a 24 GB card
    assert all(s.model.licence.commercial for s in fitting)
    assert any(line.startswith("Qwen/Qwen2.5-3B-Instruct: Qwen Research License") for line in left_out)
    for s in fitting:  # each says why it fits, from the same estimate the recommendation makes
        assert s.needs_gb <= s.available_gb and "error kept free" in s.why and s.device == "cuda"
    research, _ = suggest_models(answers([{"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24}], use="research"),
                                 limit=20)
    assert "Qwen/Qwen2.5-3B-Instruct" in {s.model.id for s in research}  # research use may take it


def test_an_8_gb_laptop_gets_smaller_models_than_a_24_gb_card() -> None:
    laptop, _ = suggest_models(answers([{"name": "NVIDIA GeForce RTX 4060 Laptop GPU", "memory_gb": 8}], ram_gb=16))
    card, _ = suggest_models(answers([{"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24}]))
    assert laptop and max(s.model.params_b for s in laptop) < max(s.model.params_b for s in card)
    assert all(s.needs_gb <= 8 for s in laptop)


def test_a_cpu_box_gets_models_it_can_train_within_a_day_and_is_told_why_others_are_left_out() -> None:
    fitting, left_out = suggest_models(answers([], ram_gb=32))
    assert fitting and all(s.device == "cpu" and s.hours <= 24 for s in fitting)
    assert any("would take about" in line for line in left_out)  # the 7B models fit in RAM but take weeks


def test_the_licence_warning_in_the_recommendation_and_the_models_command() -> None:
    chosen = answers([{"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24}], use="commercial",
                     model={"name_or_path": "Qwen/Qwen2.5-3B-Instruct"})
    rec = recommend(gather_inputs(chosen, detect=False, allow_network=False))
    assert any("does not allow commercial use" in w and "finetune-advisor models --commercial" in w
               for w in rec.warnings)
    research = answers([{"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24}], use="research",
                       model={"name_or_path": "Qwen/Qwen2.5-3B-Instruct"})
    assert not any("commercial" in w for w in recommend(gather_inputs(research, detect=False,
                                                                      allow_network=False)).warnings)
    out = subprocess.run([str(SCRIPT), "models", "--commercial", "--json"], capture_output=True, text=True,
                         check=True, timeout=120)
    shown = json.loads(out.stdout)
    assert all(m["licence"]["commercial"] for m in shown["models"])


def test_the_plan_carries_the_licence_warning_for_the_report(tmp_path: Path) -> None:
    """The run's plan holds the warning, and evaluation adds plan.licence_warning to the report's warnings."""
    from advisor.plan import make_plan
    from tests.conftest import write_jsonl

    write_jsonl(tmp_path / "train.jsonl", [{"instruction": f"Question {i}?", "output": f"Answer {i}."}
                                           for i in range(40)])
    raw = {"version": 1, "goal": "knowledge", "data": {"path": str(tmp_path / "train.jsonl")}, "use": "commercial",
           "model": {"name_or_path": "Qwen/Qwen2.5-3B-Instruct"},
           "hardware": {"gpus": [{"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24}], "ram_gb": 32}}
    chosen = answers_from_dict(raw)
    plan = make_plan(chosen, recommend(gather_inputs(chosen, detect=False, allow_network=False)))
    assert plan.licence_warning and "Qwen Research License" in plan.licence_warning
    assert make_plan(answers_from_dict({**raw, "use": "research"}),
                     recommend(gather_inputs(answers_from_dict({**raw, "use": "research"}), detect=False,
                                             allow_network=False))).licence_warning is None


def test_the_models_command_takes_an_answers_file_that_names_no_model_yet(tmp_path: Path) -> None:
    # choosing a model comes before naming one: the answers file may leave `model` out
    path = tmp_path / "before-a-model.yaml"
    path.write_text("version: 1\ngoal: agent\ndata: {examples: 2000}\nuse: commercial\n"
                    "hardware: {gpus: [{name: NVIDIA GeForce RTX 4090, memory_gb: 24}], ram_gb: 64}\n")
    out = subprocess.run([str(SCRIPT), "models", "--answers", str(path), "--json"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)["models"]
    assert shown and all(m["licence"]["commercial"] for m in shown)  # the file's use: commercial
