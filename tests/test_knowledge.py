"""knowledge/: every file loads and validates; a malformed one fails at load with file and key."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import knowledge as loader
import knowledge.files
from knowledge import RUNNABLE_METHODS, KnowledgeError


@pytest.fixture
def knowledge_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A writable copy of knowledge/ that the loaders read instead; caches cleared around the test."""
    copy = tmp_path / "knowledge"
    shutil.copytree(knowledge.files.KNOWLEDGE_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(knowledge.files, "KNOWLEDGE_DIR", copy)
    _clear()
    yield copy
    _clear()


def _clear() -> None:
    for fn in loader.LOADERS:
        fn.cache_clear()


def test_every_knowledge_file_loads() -> None:
    loader.load_all()


def test_a_card_for_every_method_id_and_the_explained_ones() -> None:
    cards = loader.load_methods()
    assert {m for m, c in cards.items() if c.runnable} == set(RUNNABLE_METHODS)
    for explained in ("adapter", "rlhf", "upft", "qat"):
        assert not cards[explained].runnable and cards[explained].not_runnable_why
    for card in cards.values():
        assert card.sources and card.strengths and card.limits and card.when_to_use


def test_cards_state_the_known_incompatibilities_and_serving_support() -> None:
    cards = loader.load_methods()
    for prefix in ("prefix", "p_tuning_v2"):
        assert cards[prefix].incompatible_with("gradient_checkpointing") is not None
        assert not cards[prefix].serving.vllm_adapter and not cards[prefix].serving.mergeable
    assert cards["lora"].incompatible_with("gradient_checkpointing") is None
    assert cards["lora"].serving.vllm_adapter
    assert "16-bit base" in cards["qlora"].serving.merge_note and "never merge into the 4-bit" in \
        cards["qlora"].serving.merge_note


def test_scorecard_weights_and_threshold() -> None:
    card = loader.load_scorecard()
    assert card.weights == {"task": 0.40, "general": 0.20, "speed": 0.15, "resources": 0.15, "deployment": 0.10}
    assert card.ready_threshold == 4.0


def test_hyperparameter_ranges_follow_the_seed_material() -> None:
    hp = loader.load_hyperparameters()
    # LoRA on a 7B model: the QLoRA paper's 2e-4; on a 70B model its 1e-4; a 135M model takes ten times more
    assert hp.learning_rate("lora", 7.6).default == 2e-4 and hp.learning_rate("lora", 70).default == 1e-4
    assert hp.learning_rate("lora", 0.135).default == 1e-3
    for method in ("lora", "full", "qlora"):  # the rate falls as models grow
        rates = [hp.learning_rate(method, size).default for size in (0.1, 7, 70)]
        assert rates == sorted(rates, reverse=True) and rates[0] > rates[-1], method
    # prompt methods use larger rates, at any size
    assert hp.learning_rate("p_tuning_v2", 7).low > hp.learning_rate("lora", 7).high
    # LoRA's rate is about ten times full fine-tuning's (Biderman et al. 2024)
    assert 5 <= hp.learning_rate("lora", 7).default / hp.learning_rate("full", 7).default <= 40
    assert hp.epochs_range == (3, 10) and hp.lora_rank_range == (8, 64)
    assert hp.gradient_accumulation_range == (2, 8)


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("methods.yaml", "    name: LoRA (low-rank", "    nmae: LoRA (low-rank", "methods[2].nmae: unknown key"),
        ("methods.yaml", "  - id: lora\n    packable: true", "  - id: lora\n    packable: yes please",
         "methods[2].packable: must be true or false"),
        ("methods.yaml", "trainable_share_percent: [0.1, 2]", "trainable_share_percent: [2, 0.1]",
         "trainable_share_percent: low 2.0 is above high 0.1"),
        ("decision_table.yaml", "method: lora\n    reason: \"knowledge", "method: loar\n    reason: \"knowledge",
         "rules[1].method: 'loar' is not a runnable method id"),
        ("decision_table.yaml", "when: {goal: style}", "when: {goal: poetry}", "rules[0].when.goal: 'poetry'"),
        ("scorecard.yaml", "task: 0.40", "task: 0.50", "weights must add up to 1"),
        ("hyperparameters.yaml", "{up_to_b: 1, range: [3.0e-4, 2.0e-3], default: 1.0e-3",
         "{up_to_b: 1, range: [3.0e-4, 8.0e-4], default: 1.0e-3", "learning_rate.lora[0].default: the default 0.001"),
        ("hyperparameters.yaml", "    - {up_to_b: null, range: [5.0e-5, 1.5e-4], default: 1.0e-4, "
         "source: \"QLoRA paper, Table 9: 1e-4 for 33B and 65B\"}\n  dora", "  dora",
         "learning_rate.lora: needs bands by model size"),
        ("architectures.yaml", "{name: q_proj, shape: q}", "{name: q_proj, shape: query}", "'query' is not allowed"),
        ("estimator.yaml", "cuda_context_gb: 0.5", "cuda_context_gb: lots", "memory.cuda_context_gb: must be a number"),
    ],
)
def test_a_malformed_knowledge_file_fails_at_load(knowledge_copy: Path, file: str, old: str, new: str,
                                                   expected: str) -> None:
    path = knowledge_copy / file
    text = path.read_text()
    assert old in text, "the test's edit no longer applies"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(KnowledgeError) as err:
        loader.load_all()
    assert file in str(err.value) and expected in str(err.value)


def test_broken_yaml_is_reported_with_the_file(knowledge_copy: Path) -> None:
    (knowledge_copy / "scorecard.yaml").write_text("version: 1\nweights: [unclosed\n")
    with pytest.raises(KnowledgeError, match=r"scorecard.yaml:\d+: not valid YAML"):
        loader.load_scorecard()
