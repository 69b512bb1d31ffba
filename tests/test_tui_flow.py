"""The whole app walked by keyboard at 80x24 on a tiny model, as a beginner would: the interview, a setting
edited (and refused until applied), training, stop, resume, results, the blind review; then what the run
directory holds is what the screens said."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from advisor.tui import FinetuneAdvisorApp
from advisor.tui.recommendation import RecommendationScreen
from advisor.tui.results import ResultsScreen
from advisor.tui.review import BlindReviewScreen
from advisor.tui.training import TrainingScreen
from runner.events import read_events
from runner.tiny_model import build_tiny_model
from tests.runner_helpers import qa_rows, tiny_texts, write_data

SIZE = (80, 24)


async def until(pilot: Any, condition: Any, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.2)


async def type_into(pilot: Any, text: str) -> None:
    """Replace the focused field's text, as a user does: end, clear, type."""
    await pilot.press("end", "ctrl+u", *text)


async def tab_to(pilot: Any, app: Any, widget_id: str) -> None:
    for _ in range(30):
        if app.focused is not None and app.focused.id == widget_id:
            return
        await pilot.press("tab")
    raise AssertionError(f"tab never reached #{widget_id}")


async def test_a_beginner_walks_the_whole_flow_by_keyboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    model = build_tiny_model(tmp_path / "tiny-llama", tiny_texts())
    data = write_data(tmp_path / "qa.jsonl", qa_rows())
    # what an answers file holds before the interview: the hardware (no GPU, whatever this machine has) and the
    # budget of a test run (heavy enough steps that Stop lands mid-run)
    answers = {"version": 1, "hardware": {"gpus": [], "ram_gb": 16},
               "overrides": {"method": "lora", "max_steps": 120, "batch_size": 16, "gradient_accumulation": 2,
                             "save_steps": 1000}}
    app = FinetuneAdvisorApp(answers, runs_dir=str(tmp_path / "runs"))
    async with app.run_test(size=SIZE) as pilot:
        # the interview: focus starts where typing goes on every step
        assert app.focused is not None and app.focused.id == "goal"
        await pilot.press("down", "enter")  # Knowledge: Enter takes it and goes on
        assert app.focused.id == "data-path"
        await pilot.press(*str(data), "enter")
        await pilot.press("ctrl+n")
        assert app.focused.id == "model-name"
        await pilot.press(*str(model), "ctrl+n")
        assert app.focused.id == "gpu-name"
        await pilot.press("ctrl+n", "ctrl+n")  # hardware from the answers; server, balanced
        await until(pilot, lambda: isinstance(app.screen, RecommendationScreen) and app.screen.recommendation,
                    "the recommendation")
        rec_screen = app.screen
        assert isinstance(rec_screen, RecommendationScreen) and rec_screen.recommendation is not None
        assert rec_screen.recommendation.method == "lora"

        # a setting edited but not applied is refused, not dropped; Enter applies it
        await tab_to(pilot, app, "hp-learning_rate")
        await type_into(pilot, "0.004")
        await pilot.press("ctrl+r")
        assert "changed but not applied: learning rate (learning_rate)" in str(
            rec_screen.query_one("#problem").render())
        assert not (tmp_path / "runs").exists()
        await pilot.press("enter")
        await until(pilot, lambda: rec_screen.recommendation is not None
                    and rec_screen.recommendation.hyperparameters["learning_rate"] == 0.004, "the applied setting")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(app.screen, TrainingScreen), "the training screen")
        training = app.screen
        assert isinstance(training, TrainingScreen)
        [run] = list((tmp_path / "runs").iterdir())
        plan = json.loads((run / "plan.json").read_text())
        assert plan["hyperparameters"]["learning_rate"] == 0.004  # what Train used is what the screen showed

        # stop mid-run, then resume in the app
        await until(pilot, lambda: len(training.steps) >= 3, "training steps")
        await pilot.press("ctrl+x")
        await until(pilot, lambda: not training.following, "the stop")
        assert training.finished is not None and training.finished["status"] == "stopped"
        assert "Resume (ctrl+r)" in str(training.query_one("#attach-hint").render())
        await pilot.press("ctrl+x")  # nothing runs: no STOP file, no signal to a PID that may be reused
        assert not (run / "STOP").exists()
        await pilot.press("ctrl+r")
        await until(pilot, lambda: training.finished is not None and training.finished["status"] == "done",
                    "the resumed run to finish")
        await until(pilot, lambda: not training.following, "the follower to end")

        # results: one evaluation, with progress, the verdict first
        await pilot.press("ctrl+o")
        first = app.screen
        assert isinstance(first, ResultsScreen) and first.evaluation is not None
        await pilot.press("escape", "ctrl+o")  # leaving and coming back follows the same evaluation
        results = app.screen
        assert isinstance(results, ResultsScreen) and results is not first
        # the same evaluation, or (when it had already finished) its report: never a second one
        assert results.evaluation is first.evaluation or (results.evaluation is None and results.report is not None)
        await until(pilot, lambda: results.report is not None, "the evaluation", timeout=300)
        assert len(app.evaluations) == 1 and app.evaluations[str(run)].messages  # its progress was shown
        verdict = str(results.query_one("#verdict").render())
        assert verdict.split("\n")[0] in ("Ready to deploy", "Not ready to deploy yet",
                                          "Inconclusive: the test set cannot tell yet")

        # the blind review: both answers on screen, then its result on the results screen
        await pilot.press("ctrl+v")
        review = app.screen
        assert isinstance(review, BlindReviewScreen)
        item = review.items[0]
        assert item.prompt.startswith("User: ") and "<|" not in item.prompt  # no chat-template markup
        for _ in review.items:
            await pilot.press("t")
        await pilot.press("escape")
        assert app.screen is results
        await pilot.pause()
        assert "Blind review" in str(results.query_one("#evidence").render())

    events = read_events(run / "events.jsonl")
    assert [e["status"] for e in events if e["kind"] == "done"] == ["stopped", "done"]
    report = json.loads((run / "report.json").read_text())
    assert report["human_preference"]["ties"] == len(review.items)
    assert report["scorecard"]["ready"] == (verdict.split("\n")[0] == "Ready to deploy")  # the screen said so
