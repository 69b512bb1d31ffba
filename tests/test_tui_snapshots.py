"""Snapshots of the main screens at 80x24 (pytest-textual-snapshot). After a deliberate change to a screen:
    .venv/bin/python -m pytest tests/test_tui_snapshots.py --snapshot-update
and look at the new SVGs under tests/__snapshots__/ before committing them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from advisor.answers import answers_from_dict
from advisor.tui import FinetuneAdvisorApp, create_app
from advisor.tui.recommendation import RecommendationScreen

SIZE = (80, 24)
ROOT = Path(__file__).resolve().parent.parent
STYLE_RUN = Path(__file__).resolve().parent / "data" / "style-run"
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


STEP_ANSWERS = {"version": 1, "goal": "knowledge", "data": {"path": "examples/data/product_faq.jsonl"},
                "model": {"name_or_path": "builtin/SmolLM2-135M-Instruct"},
                "hardware": {"gpus": [], "ram_gb": 16}}


def _step(number: int) -> Any:
    """Walks the interview (pre-filled, so the same on every machine) to step `number` by keyboard."""
    async def walk(pilot: Any) -> None:
        for _ in range(number - 1):
            await pilot.press("ctrl+n")
            await pilot.pause()
        await pilot.pause()

    return walk


@pytest.mark.parametrize(("number", "name"), [(2, "data"), (3, "model"), (4, "hardware"), (5, "target")])
def test_interview_step(snap_compare: Any, monkeypatch: Any, number: int, name: str) -> None:
    monkeypatch.chdir(ROOT)  # the data path is relative to the repository
    app = create_app(answers_from_dict(STEP_ANSWERS, source=ROOT / "answers.yaml"))
    assert snap_compare(app, terminal_size=SIZE, run_before=_step(number))


def _style_run(tmp_path: Path, monkeypatch: Any) -> FinetuneAdvisorApp:
    """The style demo's run as it was evaluated on SmolLM2-135M-Instruct (tests/data/style-run: its plan, events,
    report and predictions), under a relative path so the screen is the same everywhere."""
    shutil.copytree(STYLE_RUN, tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    return FinetuneAdvisorApp(run_dir="run")


def test_results_of_a_real_report(snap_compare: Any, tmp_path: Path, monkeypatch: Any) -> None:
    import secrets

    app = _style_run(tmp_path, monkeypatch)
    # the examples kept for the blind review are drawn afresh each time; here the same ones, for the same screen
    monkeypatch.setattr(secrets, "randbelow", lambda n: 7)

    async def open_results(pilot: Any) -> None:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+o")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_results)


def test_blind_review_shows_a_and_b(snap_compare: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from advisor.tui.review import BlindReviewScreen
    from runner.review import draw_review

    app = _style_run(tmp_path, monkeypatch)

    async def open_review(pilot: Any) -> None:
        await app.workers.wait_for_complete()
        app.push_screen(BlindReviewScreen("run", draw_review("run", n=10, seed=7)))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_review)
