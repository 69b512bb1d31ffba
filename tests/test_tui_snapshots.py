"""Snapshots of the main screens at 80x24 (pytest-textual-snapshot). After a deliberate change to a screen:
    .venv/bin/python -m pytest tests/test_tui_snapshots.py --snapshot-update
and look at the new SVGs under tests/__snapshots__/ before committing them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from advisor.answers import answers_from_dict
from advisor.tui import FinetuneAdvisorApp, create_app
from advisor.tui.recommendation import RecommendationScreen

SIZE = (80, 24)
ANSWERS = {"version": 1, "goal": "knowledge", "data": {"examples": 4000},
           "model": {"name_or_path": "Qwen/Qwen2.5-7B-Instruct"},
           "hardware": {"gpus": [{"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24}], "ram_gb": 64}}


def test_interview_first_screen(snap_compare: Any) -> None:
    assert snap_compare(FinetuneAdvisorApp(), terminal_size=SIZE)


def test_recommendation_screen(snap_compare: Any) -> None:
    app = create_app(answers_from_dict(ANSWERS))

    async def open_recommendation(pilot: Any) -> None:
        app.push_screen(RecommendationScreen(answers_from_dict(ANSWERS)))
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_recommendation)


def test_training_screen_from_a_recorded_run(snap_compare: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)  # a relative run path: the title is the same on every machine
    run = Path("run")
    run.mkdir()
    (run / "plan.json").write_text(json.dumps({"method": "lora"}))
    events = [{"t": 1 + i, "kind": "step", "step": i, "max_steps": 20, "epoch": i / 10, "loss": 6.0 / i,
               "learning_rate": 1e-4, "tokens_per_s": 1000.0, "memory_gb": 0.5} for i in range(1, 21)]
    events.append({"t": 30, "kind": "done", "status": "done", "exit_code": 0, "steps": 20})
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    app = FinetuneAdvisorApp(run_dir="run")

    async def follow(pilot: Any) -> None:
        await app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=follow)
