"""Evaluation of a finished run: same test examples for both models, every file written, nothing of the
run touched, re-runnable, and bad runs refused with exit 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from knowledge.errors import InputError
from runner.evaluate import evaluate_run
from runner.report import read_report
from runner.rundir import RunDir
from runner.tiny_model import build_tiny_model
from tests.runner_helpers import make_run, qa_rows, tiny_texts, train_to_the_end, write_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    model = build_tiny_model(root / "llama", tiny_texts())
    data = write_data(root / "qa.jsonl", qa_rows())
    run = make_run(root, model, "lora", data, learning_rate=5e-3, max_steps=6)
    train_to_the_end(run)
    return run.path


def _digest(path: Path) -> str:
    """The folder's files, all but its model card (README.md, which evaluation fills in with the verdict)."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != "README.md"):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _greedy(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int) -> str:
    """One greedy answer, made here without the evaluation's code: what each prediction file must hold."""
    import torch

    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return str(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)).strip()


def test_both_models_are_scored_on_exactly_the_runs_test_examples(trained: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from runner.data import prompt_and_reference

    report = evaluate_run(trained)
    test = _lines(trained / "data" / "test.jsonl")
    base = _lines(trained / "eval" / "predictions-base.jsonl")
    tuned = _lines(trained / "eval" / "predictions-tuned.jsonl")
    assert len(base) == len(tuned) == len(test) == report.test_examples
    plan = RunDir(trained).read_plan()
    tokenizer = AutoTokenizer.from_pretrained(plan.model.name_or_path)
    expected = [prompt_and_reference(row, tokenizer) for row in test]  # rebuilt from the saved split
    assert [(b["prompt"], b["reference"]) for b in base] == [(t["prompt"], t["reference"]) for t in tuned] == expected
    assert [b["reference"] for b in base] == [r["messages"][-1]["content"] for r in test]
    assert [b["source_index"] for b in base] == [r["source_index"] for r in test]
    for b in base:
        assert b["reference"] not in b["prompt"]  # the prompt never holds the answer
        assert set(b["scores"]) == {"fact_match", "exact_match", "token_f1"}
    # each file holds its own model's answers: regenerated here, with each model loaded apart
    model = AutoModelForCausalLM.from_pretrained(plan.model.name_or_path).eval()
    new = report.decoding["max_new_tokens"]
    assert [_greedy(model, tokenizer, str(b["prompt"]), new) for b in base[:3]] == [b["output"] for b in base[:3]]
    model = PeftModel.from_pretrained(model, str(trained / "adapter")).eval()
    assert [_greedy(model, tokenizer, str(t["prompt"]), new) for t in tuned[:3]] == [t["output"] for t in tuned[:3]]
    assert [b["output"] for b in base] != [t["output"] for t in tuned]


def test_an_untrained_adapter_is_no_different_from_its_base(tmp_path: Path) -> None:
    """The null case end to end: an adapter that learned nothing (LoRA starts as the identity) must never be
    called significantly better or worse, nor ready to deploy."""
    from runner.methods import apply_method
    from runner.model import load_model

    model = build_tiny_model(tmp_path / "llama", tiny_texts())
    rows = [{"instruction": f"Form {k}: capital of country {i}?", "input": "", "output": f"City{i} it is."}
            for i in range(40) for k in range(3)]
    run = make_run(tmp_path, model, "lora", write_data(tmp_path / "qa.jsonl", rows))
    from runner.data import prepare_splits

    plan = run.read_plan()
    prepare_splits(plan, run)
    apply_method(load_model(str(model), device="cpu", method="lora", bits=None), plan).save_pretrained(
        str(run.adapter))
    report = evaluate_run(run.path)
    assert report.test_examples == 12
    for name, result in report.metrics.items():
        assert result["direction"] in ("no difference", "inconclusive"), name
        assert result["p_value"] >= 0.05 and result["effect"] == 0
    assert _lines(run.predictions("base")) == _lines(run.predictions("tuned"))
    assert report.general_ability["direction"] in ("no difference", "inconclusive")
    assert abs(report.general_ability["perplexity_increase"]) < 1e-4
    assert not report.scorecard["ready"] and "train longer" not in report.verdict


def test_the_report_holds_statistics_scorecard_and_verdict(trained: Path) -> None:
    report = read_report(RunDir(trained)) if (trained / "report.json").exists() else evaluate_run(trained)
    em = report.metrics["exact_match"]
    assert report.primary_metric == "fact_match"
    assert em["kind"] == "binary" and {"p_value", "effect", "ci_low", "ci_high", "n", "sentence"} <= set(em)
    assert report.metrics["token_f1"]["kind"] == "continuous"
    from runner.records import GENERAL_SET

    general = report.general_ability
    assert general["perplexity_base"] > 0 and general["texts"] == len(GENERAL_SET.read_text().splitlines())
    assert general["direction"] in ("better", "worse", "no difference", "inconclusive") and general["change_interval"]
    speed = report.speed
    assert {"base", "tuned", "tuned_merged"} <= set(speed) and speed["served"] == "tuned_merged"
    assert all(speed[k]["rounds"] == 3 and speed[k]["lowest"] <= speed[k]["tokens_per_s"] <= speed[k]["highest"]
               for k in ("base", "tuned", "tuned_merged"))
    assert report.decoding["repetition_penalty"] == 1.0 and report.decoding["end_token_ids"]
    assert report.decoding["dtype"] == "float32" and report.decoding["dtype_note"] is None  # trained in fp32 too
    assert report.direction == report.metrics[report.primary_metric]["direction"]
    card = report.scorecard
    assert set(card["dimensions"]) == {"task", "general", "speed", "resources", "deployment"}
    assert all(d["inputs"] for d in card["dimensions"].values())
    assert 1 <= card["total"] <= 5 and report.verdict == card["verdict"]
    assert (trained / "loss.png").read_bytes().startswith(b"\x89PNG")
    md = (trained / "report.md").read_text()
    assert md.splitlines()[2].startswith("**Verdict:") and "p-value is the chance" in md
    assert "## Gates" in md and "## Decoding" in md and "None" not in md


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
        train_to_the_end(run)
        runs.append(str(run.path))
    result = compare_runs(runs)
    assert [r["method"] for r in result["runs"]] == ["lora", "ia3", "p_tuning_v2"]
    assert len(result["pairwise"]) == 3 and result["omnibus"]["test"] == "Cochran's Q"
    assert all(r["p_holm"] >= r["p_value"] for r in result["runs"] + result["pairwise"])
    other = make_run(tmp_path / "other", model, "lora", write_data(tmp_path / "qa2.jsonl", qa_rows()[:30]),
                     max_steps=1)
    train_to_the_end(other)
    with pytest.raises(InputError, match="tested on different examples"):
        compare_runs([runs[0], str(other.path)])
    with pytest.raises(InputError, match="the same run as"):  # it inflated Holm's family before
        compare_runs([runs[0], runs[0] + "/"])


def test_evaluate_json_prints_only_json(trained: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "finetune-advisor"
    result = subprocess.run([str(script), "evaluate", str(trained), "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "verdict" in json.loads(result.stdout) and "generating" in result.stderr
    # third-party warnings, log records and progress bars go to the log file, never to the terminal
    ours = ("base model: ", "tuned model: ", "merged model", "timing generation", "report: ")
    assert all(line.startswith(ours) for line in result.stderr.splitlines()), result.stderr
    assert (trained / "eval" / "evaluate.log").is_file()


def _trained(tmp_path: Path, method: str, **overrides: Any) -> RunDir:
    """A run of `method` on the tiny model and the QA rows, trained."""
    model = build_tiny_model(tmp_path / "llama", tiny_texts())
    run = make_run(tmp_path, model, method, write_data(tmp_path / "qa.jsonl", qa_rows()), **overrides)
    train_to_the_end(run)
    return run


def test_qlora_is_compared_with_its_4bit_base_and_the_quantization_effect_apart(tmp_path: Path) -> None:
    run = _trained(tmp_path, "qlora", learning_rate=5e-3, max_steps=4)
    report = evaluate_run(run.path)
    assert "4-bit" in report.compared_with and report.quantization is not None
    quantized = _lines(run.predictions("base_quantized"))
    primary = report.primary_metric
    # the fine-tuning effect is measured against the 4-bit base; the quantization effect against the 16-bit one
    assert report.primary["base_mean"] == pytest.approx(sum(r["scores"][primary] for r in quantized) / len(quantized))
    effect = report.quantization["metrics"][primary]
    base16 = _lines(run.predictions("base"))
    assert effect["base_mean"] == pytest.approx(sum(r["scores"][primary] for r in base16) / len(base16))
    assert report.quantization["general_ability"]["perplexity_base"] != report.general_ability["perplexity_base"]
    assert {"base", "tuned_merged", "base_quantized", "tuned"} <= set(report.speed)
    assert report.speed["served"] == "tuned_merged" and report.speed["against"] == "base"
    assert "## Quantization (QLoRA)" in run.report_md.read_text()


def test_a_full_fine_tune_is_timed_against_its_base_in_alternating_rounds(tmp_path: Path) -> None:
    run = _trained(tmp_path, "full", learning_rate=1e-3, max_steps=2)
    report = evaluate_run(run.path)
    assert report.speed["served"] == "tuned" and report.speed["against"] == "base"
    assert report.quantization is None and report.speed["ratio"]["range"][0] <= report.speed["ratio"]["ratio"]


def test_a_save_cut_short_is_named_before_evaluation_loads_anything(tmp_path: Path) -> None:
    """kill -9 during the final save left an empty adapter/ and evaluate crashed."""
    run = _trained(tmp_path, "lora", max_steps=2)
    weights = run.adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(InputError, match="incomplete") as err:
        evaluate_run(run.path)
    assert "train --resume" in str(err.value)


def test_speed_is_left_out_when_the_answers_say_so(trained: Path, tmp_path: Path) -> None:
    """evaluation.speed: false (quick evaluations, the pilot's): no timing rounds, and the scorecard says speed
    was not measured instead of scoring it."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("eval", "report.*", "*.lock"))
    plan = json.loads((run / "plan.json").read_text())
    plan["evaluation"]["speed"] = False
    (run / "plan.json").write_text(json.dumps(plan))
    said: list[str] = []
    report = evaluate_run(run, progress=said.append)
    assert said and not any("timing" in message for message in said)
    assert report.speed["ratio"] is None and report.scorecard["dimensions"]["speed"]["score"] is None
    assert "not timed: the answers set evaluation.speed to false" in (run / "report.md").read_text()


def test_evaluation_speed_is_a_yes_or_no_answer() -> None:
    from advisor.answers import answers_from_dict, answers_to_dict

    raw = {"version": 1, "goal": "style", "data": {"examples": 100}, "model": {"name_or_path": "gpt2"}}
    off = answers_from_dict({**raw, "evaluation": {"speed": False}})
    assert off.evaluation.speed is False and answers_to_dict(off)["evaluation"]["speed"] is False
    assert answers_from_dict(raw).evaluation.speed is True
    with pytest.raises(InputError) as err:
        answers_from_dict({**raw, "evaluation": {"speed": "no"}})
    assert err.value.key == "evaluation.speed" and "true or false" in str(err.value)


def _card(folder: Path) -> tuple[dict[str, Any], str]:
    import yaml

    text = (folder / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def test_the_model_card_carries_the_run_and_then_its_verdict(trained: Path, tmp_path: Path) -> None:
    """adapter/README.md: the Hugging Face metadata header parses, and holds the base model, the method, and
    after evaluation the report's numbers; the body has the data in counts and the command to reproduce it."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("eval", "report.*", "*.lock"))
    from runner.model_card import write_model_card

    write_model_card(RunDir(run), run / "adapter")  # as training leaves it (the fixture may be evaluated already)
    meta, body = _card(run / "adapter")
    plan = json.loads((run / "plan.json").read_text())
    assert meta["base_model"] == plan["model"]["name_or_path"] and meta["library_name"] == "peft"
    assert "lora" in meta["tags"] and "model-index" not in meta and "Not evaluated yet" in body
    assert f"finetune-advisor replay {run / 'answers.yaml'}" in body and "for training" in body
    report = evaluate_run(run)
    meta, body = _card(run / "adapter")
    [result] = meta["model-index"][0]["results"]
    values = {m["type"]: m["value"] for m in result["metrics"]}
    assert values == {name: round(m["tuned_mean"], 4) for name, m in report.metrics.items()}
    assert f"**Verdict: {report.verdict}.**" in body
    primary = report.primary
    assert f"({primary['ci_low']:+.4g} to {primary['ci_high']:+.4g})" in body  # the interval, not only the mean


def _scalars(folder: Path) -> dict[str, list[int]]:
    """The scalar tags and their steps in TensorBoard event files (TFRecord: length, crc, Event, crc)."""
    import struct

    from tensorboardX.proto import event_pb2

    out: dict[str, list[int]] = {}
    for path in folder.rglob("events.out.tfevents.*"):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
            i += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append(event.step)
    return out


def test_training_logs_go_to_tensorboard_unless_turned_off(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")
    model = build_tiny_model(tmp_path / "llama", tiny_texts())
    data = write_data(tmp_path / "qa.jsonl", qa_rows())
    on = make_run(tmp_path / "on", model, "lora", data, max_steps=4, save_steps=100)
    train_to_the_end(on)
    scalars = _scalars(on.tensorboard)
    assert scalars.get("train/loss") and max(scalars["train/loss"]) == 4  # the Trainer's own logs, every step
    off = make_run(tmp_path / "off", model, "lora", data, max_steps=4, save_steps=100, tensorboard=False)
    train_to_the_end(off)
    assert not off.tensorboard.exists()


def test_base_measurements_are_shared_only_for_the_same_inputs(trained: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A pilot's candidates share one file of the base model's measurements. A file made for other inputs (other
    prompts, model, decoding or general text) is never read: the base is measured anew and the file replaced.
    Read back for the same inputs, it gives the same scores as measuring again, without loading the base (a
    LoRA run times its speed with the adapter switched off)."""
    import runner.model

    loaded: list[str] = []
    load_model = runner.model.load_model

    def counted(*args: Any, **kwargs: Any) -> Any:
        loaded.append(kwargs["method"])
        return load_model(*args, **kwargs)

    monkeypatch.setattr(runner.model, "load_model", counted)
    shared = tmp_path / "base-measurements.json"
    shared.write_text(json.dumps({"key": "made for other prompts", "settings": {}, "outputs": ["wrong"] * 40,
                                  "timing": {}, "losses": [[1.0, 1]] * 200}))
    measured = evaluate_run(trained, base_from=shared)
    assert "base_measured_for_an_earlier_run" not in measured.speed
    assert len(loaded) == 2  # the base, and the base under the trained adapter
    saved = json.loads(shared.read_text())
    base_outputs = [row["output"] for row in _lines(trained / "eval" / "predictions-base.jsonl")]
    assert saved["key"] != "made for other prompts" and saved["outputs"] == base_outputs
    read_back = evaluate_run(trained, base_from=shared)
    assert read_back.speed["base_measured_for_an_earlier_run"] == str(shared)
    assert len(loaded) == 3  # only the base under the adapter
    assert [row["output"] for row in _lines(trained / "eval" / "predictions-base.jsonl")] == base_outputs
    assert read_back.metrics == measured.metrics and read_back.general_ability == measured.general_ability
