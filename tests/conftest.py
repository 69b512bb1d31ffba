"""Shared fixtures: stable threading, tiny model folders, and an in-process CLI runner."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the hub

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: A small Llama-shaped config: hand-computable parameter counts.
TINY_LLAMA: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100, "tie_word_embeddings": False,
    "max_position_embeddings": 256,
}


def write_model_folder(path: Path, config: dict[str, Any]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture
def tiny_llama_dir(tmp_path: Path) -> Path:
    return write_model_folder(tmp_path / "tiny-llama", TINY_LLAMA)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from advisor.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def both_cores(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Train and evaluate on every core, for tests of a real model that assert results, not timings (the suite
    runs on one thread otherwise, for stable timings)."""
    import torch

    cores = str(os.cpu_count() or 1)
    monkeypatch.setenv("OMP_NUM_THREADS", cores)  # the training process
    before = torch.get_num_threads()
    torch.set_num_threads(int(cores))  # evaluation, in this process
    yield int(cores)
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The built-in SmolLM2-135M-Instruct's folder, converted from its GGUF once into the cache (about 20 s)."""
    from runner.builtin_models import builtin_model, ensure_builtin
    from runner.demo_assets import DEMO_MODEL

    model = builtin_model(DEMO_MODEL)
    assert model is not None
    return ensure_builtin(model)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> Path:
    """A demo folder as `finetune-advisor demo` makes it: the datasets and the shipped answers files."""
    from advisor.pipeline import demo_answers
    from runner.demo_assets import write_demo_datasets

    root = tmp_path_factory.mktemp("demo")
    write_demo_datasets(root / "data")
    demo_answers(root)
    return root
