"""Helpers for the runner tests: a tiny model folder, demo-like data, and a run directory from a plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from advisor.answers import answers_from_dict
from advisor.plan import make_plan
from advisor.recommend import gather_inputs, recommend
from advisor.runs import create_run
from runner.events import read_events
from runner.rundir import RunDir
from runner.train import run_training

QA = [(f"What is the capital of country {i}?", f"The capital of country {i} is City{i}.") for i in range(40)]


def qa_rows() -> list[dict[str, Any]]:
    return [{"instruction": q, "input": "", "output": a} for q, a in QA]


def tiny_texts() -> list[str]:
    return [f"{q} {a}" for q, a in QA] * 5


def write_data(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_run(tmp_path: Path, model: Path, method: str, data: Path, **overrides: Any) -> RunDir:
    """A run directory for `method` on the tiny model, as `finetune-advisor train` would create it."""
    raw = {"version": 1, "goal": "knowledge", "data": {"path": str(data)}, "model": {"name_or_path": str(model)},
           "hardware": {"gpus": [], "ram_gb": 16},
           "overrides": {"method": method, "max_steps": 8, "save_steps": 4, "batch_size": 4,
                         "gradient_accumulation": 1, **overrides}}
    answers = answers_from_dict(raw, source=tmp_path / "answers.yaml")
    recommendation = recommend(gather_inputs(answers, detect=False, allow_network=False))
    return create_run(answers, recommendation, make_plan(answers, recommendation), str(tmp_path / "runs"))


def train_to_the_end(run: RunDir, **kwargs: Any) -> None:
    """Train the run and require it to finish; a failure shows the run's own message (a refusal for too little
    disk, say), not only its exit code."""
    code = run_training(run, **kwargs)
    assert code == 0, f"the run ended with exit code {code}: {read_events(run.events)[-1].get('message')}"
