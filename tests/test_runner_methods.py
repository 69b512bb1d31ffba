"""Every method id trains for a few steps on a tiny local model on the CPU: the loss falls, the artifact
reloads with identical logits, and generation works (QLoRA 4-bit NF4 included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.events import read_events
from runner.plan import Plan
from runner.tiny_model import build_tiny_model
from tests.runner_helpers import make_run, qa_rows, tiny_texts, train_to_the_end, write_data

torch = pytest.importorskip("torch")

# method, learning rate high enough that 8 steps move a tiny random model
TEST_CASES = [
    ("lora", 5e-3), ("dora", 5e-3), ("qlora", 5e-3), ("prefix", 3e-2), ("p_tuning_v2", 3e-2), ("p_tuning", 1e-2),
    ("prompt_tuning", 3e-1), ("ia3", 5e-2), ("freeze", 2e-3), ("full", 2e-3),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return {"llama": build_tiny_model(root / "llama", tiny_texts()),
            "gpt2": build_tiny_model(root / "gpt2", tiny_texts(), architecture="gpt2", chat_template=False)}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "qa.jsonl", qa_rows())


def _reload(run_path: Path, plan: Plan) -> Any:
    from peft import PeftModel

    from runner.model import load_model

    method = plan.method
    if plan.card.full_model:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(str(run_path / "model"))
    base = load_model(plan.model.name_or_path, device="cpu", method=method, bits=plan.hyperparameters["bits"])
    return PeftModel.from_pretrained(base, str(run_path / "adapter"))


CASES = [("llama", m, lr) for m, lr in TEST_CASES] + [("gpt2", "lora", 5e-3)]


@pytest.mark.parametrize(("arch", "method", "lr"), CASES, ids=[f"{a}-{m}" for a, m, _ in CASES])
def test_method_trains_saves_reloads_and_generates(models: dict[str, Path], data: Path, tmp_path: Path, arch: str,
                                                    method: str, lr: float) -> None:
    run = make_run(tmp_path, models[arch], method, data, learning_rate=lr)
    probe = torch.tensor([[5, 17, 42, 8, 99, 3 + 20]])
    seen: dict[str, Any] = {}

    def keep(model: Any, tokenizer: Any) -> None:
        model.eval()
        with torch.no_grad():
            seen["logits"] = model(input_ids=probe).logits

    train_to_the_end(run, on_trained=keep)
    events = read_events(run.events)
    losses = [e["loss"] for e in events if e["kind"] == "step"]
    assert len(losses) == 8 and losses[-1] < losses[0], losses
    assert events[-1]["kind"] == "done" and events[-1]["status"] == "done" and events[-1]["steps"] == 8

    plan = run.read_plan()
    reloaded = _reload(run.path, plan)
    reloaded.eval()
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=probe).logits, seen["logits"])
        out = reloaded.generate(input_ids=probe, attention_mask=torch.ones_like(probe), max_new_tokens=4,
                                min_new_tokens=4, do_sample=False, pad_token_id=3)
    assert out.shape[1] == probe.shape[1] + 4


def test_qlora_really_trains_over_4bit_weights(models: dict[str, Path], data: Path, tmp_path: Path) -> None:
    run = make_run(tmp_path, models["llama"], "qlora", data, learning_rate=5e-3, max_steps=2)
    kinds: set[str] = set()

    def inspect(model: Any, tokenizer: Any) -> None:
        kinds.update(type(m).__name__ for m in model.modules())

    train_to_the_end(run, on_trained=inspect)
    assert "Linear4bit" in kinds


def test_prefix_methods_never_use_gradient_checkpointing(models: dict[str, Path], data: Path, tmp_path: Path) -> None:
    run = make_run(tmp_path, models["llama"], "p_tuning_v2", data, learning_rate=3e-2, max_steps=2)
    flags: list[bool] = []

    def inspect(model: Any, tokenizer: Any) -> None:
        from runner.methods.prompt import checkpointing_on

        flags.append(checkpointing_on(model.get_base_model()))

    train_to_the_end(run, on_trained=inspect)
    assert flags == [False]


def test_a_packed_batch_gives_the_same_loss_as_a_padded_one(models: dict[str, Path]) -> None:
    """Padding-free batches keep examples apart: no token attends across an example boundary."""
    from transformers import AutoModelForCausalLM

    from runner.train import _collator

    model = AutoModelForCausalLM.from_pretrained(str(models["llama"]), dtype=torch.float32)
    model.config.use_cache = False
    examples = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * 3 + ids[3:]}
                for ids in ([5, 9, 30, 41, 77, 12, 6], [8, 15, 16, 23, 42], [100, 101, 102, 103, 104, 105, 106, 107])]
    padded = _collator(3, 1, packing=False)(examples)
    packed = _collator(3, 1, packing=True)(examples)
    assert packed["input_ids"].shape == (1, 20) and "attention_mask" not in packed
    with torch.no_grad():
        assert torch.allclose(model(**padded).loss, model(**packed).loss, atol=1e-5)


def test_4bit_layers_train_the_same_after_an_evaluation(tmp_path: Path) -> None:
    """bitsandbytes >= 0.49 repacks a 4-bit weight for a CPU inference kernel on its first forward without
    gradients (the Trainer's evaluation): that crashed on in_features that are not a multiple of 64 and dropped
    gradients afterwards. An evaluation in the middle of training must change neither the layout nor a gradient."""
    from peft import LoraConfig, get_peft_model

    from runner.model import load_model

    folder = build_tiny_model(tmp_path / "odd", tiny_texts()[:40], intermediate_size=96)  # down_proj: 96 inputs
    ids = torch.tensor([[5, 17, 42, 8, 99, 23, 7, 9, 11]])
    base = load_model(str(folder), device="cpu", method="qlora", bits=4).eval()
    with torch.no_grad():  # raised "shape '[64, 1]' is invalid for input of size 96" with the repacking
        assert base(input_ids=ids).logits.shape == (1, ids.shape[1], base.config.vocab_size)

    def lora_grads(evaluate_first: bool) -> dict[str, Any]:
        torch.manual_seed(0)
        model = get_peft_model(load_model(str(folder), device="cpu", method="qlora", bits=4),
                               LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
        if evaluate_first:
            model.eval()
            with torch.no_grad():
                model(input_ids=ids)
            model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        packed = [m for m in model.modules() if getattr(getattr(getattr(m, "weight", None), "quant_state", None),
                                                        "packing_format_for_cpu", False)]
        assert not packed
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, after_eval = lora_grads(False), lora_grads(True)
    assert plain.keys() == after_eval.keys() and plain
    for name, grad in plain.items():
        assert torch.equal(grad, after_eval[name]), name


@pytest.mark.parametrize("method", ["p_tuning_v2", "prefix", "prompt_tuning", "p_tuning"])
def test_soft_prompts_are_used_when_generating(models: dict[str, Path], data: Path, tmp_path: Path,
                                               method: str) -> None:
    """generate() must score each next token as the trained model does: at every step its scores equal those of a
    full forward pass over the same tokens (no cache), which always applies the prompts. (transformers 5 with
    PEFT 0.21 dropped them in generate: its scores were the base model's.)"""
    from runner.model import load_trained

    run = make_run(tmp_path, models["llama"], method, data, learning_rate=0.1, max_steps=4)
    train_to_the_end(run)
    model = load_trained(run, run.read_plan(), device="cpu")
    prompt = torch.tensor([[5, 17, 42, 8, 99, 23]])
    with torch.no_grad():
        out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=5,
                             min_new_tokens=5, do_sample=False, pad_token_id=3, output_logits=True,
                             return_dict_in_generate=True)
        for step, scores in enumerate(out.logits):  # the raw logits, before min_new_tokens masks the end token
            seen = out.sequences[:, : prompt.shape[1] + step]
            logits = model(input_ids=seen, attention_mask=torch.ones_like(seen)).logits[0, -1]
            assert torch.allclose(scores[0], logits, atol=1e-4), (step, (scores[0] - logits).abs().max())
