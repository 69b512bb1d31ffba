"""The Textual app, driven with Pilot at 80x24: the interview for each goal gives the same recommendation as
the headless path, steps validate, answers save and replay, and the training and results screens show a
recorded run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input, OptionList, ProgressBar, Static

from advisor.answers import answers_from_dict, load_answers
from advisor.recommend import gather_inputs, recommend
from advisor.tui import FinetuneAdvisorApp
from advisor.tui.interview import GOALS
from advisor.tui.recommendation import RecommendationScreen
from advisor.tui.results import ResultsScreen
from advisor.tui.training import TrainingScreen
from runner.plan import Plan, PlanData, PlanModel
from runner.report import Report

SIZE = (80, 24)


def screen_text(app: Any) -> str:
    """What the terminal shows now, as text."""
    import io

    from rich.console import Console

    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), force_terminal=True,
                      color_system=None, record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text(styles=False)


async def walk(app: FinetuneAdvisorApp, pilot: Any, goal: str, examples: str, model: str, gpu_gb: str,
               **hardware: str) -> None:
    screen = app.screen
    screen.query_one("#goal", OptionList).highlighted = list(GOALS).index(goal)
    await pilot.click("#next")  # the mouse works too; the rest is keyboard-first
    screen.query_one("#data-examples", Input).focus()
    await pilot.press(*examples)
    await pilot.press("ctrl+n")
    screen.query_one("#model-name", Input).focus()
    await pilot.press(*model)
    await pilot.press("ctrl+n")
    await pilot.pause()
    for widget_id, value in (("#gpu-name", "NVIDIA A100-SXM4-80GB"), ("#gpu-memory", gpu_gb), ("#ram", "64"),
                             *((f"#{k.replace('_', '-')}", v) for k, v in hardware.items())):
        screen.query_one(widget_id, Input).value = value
    await pilot.press("ctrl+n")
    await pilot.press("ctrl+n")  # deploy server, priority balanced (the defaults)
    await app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize(("goal", "expected"), [("style", "p_tuning_v2"), ("knowledge", "lora"),
                                                ("reasoning", "lora"), ("agent", "lora")])
async def test_the_interview_recommends_what_replay_would(goal: str, expected: str) -> None:
    app = FinetuneAdvisorApp()
    async with app.run_test(size=SIZE) as pilot:
        await walk(app, pilot, goal, "4000", "Qwen/Qwen2.5-1.5B-Instruct", "80")
        assert isinstance(app.screen, RecommendationScreen)
        shown = app.screen.recommendation
        assert shown is not None and shown.method == expected
        headless = recommend(gather_inputs(answers_from_dict(app.answers), detect=False, allow_network=False))
        assert shown == headless  # the same function, the same answers: the same recommendation


async def test_the_interview_takes_several_gpus_and_machines() -> None:
    app = FinetuneAdvisorApp()
    async with app.run_test(size=SIZE) as pilot:
        await walk(app, pilot, "knowledge", "4000", "Qwen/Qwen2.5-1.5B-Instruct", "80", gpu_count="4", nodes="2",
                   main_address="10.0.0.5:29500")
        assert app.answers["hardware"]["nodes"] == 2 and len(app.answers["hardware"]["gpus"]) == 4
        assert app.answers["hardware"]["main_address"] == "10.0.0.5:29500"
        assert isinstance(app.screen, RecommendationScreen)
        shown = app.screen.recommendation
        assert shown is not None and shown.distributed["processes"] == 8
        assert "Processes: 8 processes (4 a machine x 2 machines)" in str(app.screen.query_one("#memory-bar").render())


async def test_each_step_checks_its_answer() -> None:
    app = FinetuneAdvisorApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "enter")  # Knowledge: Enter takes it and goes on
        assert app.answers["goal"] == "knowledge"
        await pilot.press("ctrl+n")  # no data given
        assert "give your data file" in str(app.screen.query_one("#problem", Static).render())
        app.screen.query_one("#data-path", Input).value = "/no/such/file.jsonl"
        await pilot.press("ctrl+n")
        assert "no such file" in str(app.screen.query_one("#problem", Static).render())
        assert app.screen.query_one("#back", Button).disabled is False


async def test_saving_on_the_goal_step_keeps_the_highlighted_goal(tmp_path: Path) -> None:
    # the highlight is the answer on the goal step (no Next needed): a save there must not lose it
    from advisor.tui import create_app
    from tests.conftest import EXAMPLES

    app = create_app(load_answers(EXAMPLES / "style.yaml"))
    target = tmp_path / "goal.yaml"
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "ctrl+s")  # style -> reasoning
        await pilot.pause()
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.press("enter")
        await pilot.pause()
    assert load_answers(target).goal == "reasoning"


async def test_answers_saved_in_the_app_replay_to_the_same_recommendation(tmp_path: Path) -> None:
    app = FinetuneAdvisorApp()
    target = tmp_path / "saved.yaml"
    async with app.run_test(size=SIZE) as pilot:
        await walk(app, pilot, "knowledge", "5000", "meta-llama/Llama-3.2-1B-Instruct", "24")
        assert isinstance(app.screen, RecommendationScreen)
        shown = app.screen.recommendation
        await pilot.press("ctrl+s")
        await pilot.pause()
        field = app.screen.query_one("#path", Input)
        field.value = str(target)
        await pilot.press("enter")
        await pilot.pause()
    replayed = recommend(gather_inputs(load_answers(target), detect=False, allow_network=False))
    assert shown == replayed


async def test_the_app_opens_pre_filled_from_an_answers_file() -> None:
    from advisor.tui import create_app
    from tests.conftest import EXAMPLES

    app = create_app(load_answers(EXAMPLES / "style.yaml"))
    async with app.run_test(size=SIZE) as pilot:
        assert app.screen.query_one("#goal", OptionList).highlighted == list(GOALS).index("style")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen.query_one("#data-path", Input).value == "data/support_style.jsonl"
        assert "usable example" in str(app.screen.query_one("#findings").render())  # checked on arrival
        for _ in range(4):
            await pilot.press("ctrl+n")
            await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, RecommendationScreen) and app.screen.recommendation is not None
        assert app.screen.recommendation.method == "p_tuning_v2"


def recorded_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    plan = Plan(goal="knowledge", method="lora", method_family="lora", model=PlanModel("m"), data=PlanData("d"),
                hyperparameters={})
    (run / "plan.json").write_text(json.dumps(plan.to_json()))
    events = [{"t": 1, "kind": "phase", "phase": "train", "step": 0, "max_steps": 4}]
    events += [{"t": 1 + i, "kind": "step", "step": i, "max_steps": 4, "epoch": i / 4, "loss": 5.0 - i,
                "learning_rate": 1e-4, "tokens_per_s": 1000.0, "memory_gb": 0.5} for i in range(1, 5)]
    events += [{"t": 6, "kind": "eval", "step": 4, "eval_loss": 2.5},
               {"t": 7, "kind": "done", "status": "done", "exit_code": 0, "steps": 4, "artifact": str(run)}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


async def test_the_training_screen_follows_recorded_events(tmp_path: Path) -> None:
    run = recorded_run(tmp_path)
    app = FinetuneAdvisorApp(run_dir=str(run))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrainingScreen)
        assert screen.query_one("#progress", ProgressBar).progress == 4
        assert screen.losses == [4.0, 3.0, 2.0, 1.0] and screen.eval_losses == [2.5]
        assert screen.query_one("#results", Button).disabled is False
        assert screen.query_one("#stop", Button).disabled is True


def recorded_report(run: Path) -> dict[str, Any]:
    """A report.json as evaluate writes it, with a ready verdict and a perfect primary metric."""
    verdict = "ready to deploy (weighted score 4.00 of 5, threshold 4)"
    card: dict[str, Any] = {"dimensions": {d: {"score": 4.0, "weight": w, "inputs": {"x": 1}} for d, w in
                                           (("task", 0.4), ("general", 0.2), ("speed", 0.15), ("resources", 0.15),
                                            ("deployment", 0.1))},
                            "total": 4.0, "ready": True, "verdict": verdict, "ready_threshold": 4.0,
                            "improve_first": None, "gates": [{"gate": "significant_gain", "passed": True,
                                                              "detail": "significantly better"}]}
    metric = {"sentence": "The tuned model got 9 of 10 right, the base 1.", "base_mean": 0.1, "tuned_mean": 0.9,
              "effect": 0.8, "ci_low": 0.5, "ci_high": 1.0, "p_value": 0.004, "direction": "better"}
    rate = {"tokens_per_s": 10.0, "lowest": 9.0, "highest": 11.0, "rounds": 3}
    decoding = {"strategy": "greedy", "do_sample": False, "num_beams": 1, "repetition_penalty": 1.0,
                "no_repeat_ngram_size": 0, "max_new_tokens": 20, "end_token_ids": [2], "seed": 0}
    return Report(run=str(run), method="lora", goal="knowledge", model="m", device="cpu", test_examples=10,
                  test_split="", decoding=decoding, primary_metric="exact_match", metrics={"exact_match": metric},
                  direction="better", compared_with="the base model",
                  general_ability={"texts": 40, "tokens": 500, "perplexity_base": 10.0, "perplexity_tuned": 10.2,
                                   "perplexity_increase": 0.02, "sentence": "No difference shown."},
                  speed={"base": rate, "tuned": rate, "served": "tuned", "against": "base", "method": "timed",
                         "ratio": {"ratio": 1.0, "range": [0.8, 1.2], "measured_difference": False,
                                   "scored_ratio": 1.0}},
                  resources={"train_seconds": 1, "peak_memory_gb": 1, "artifact_gb": 0.1}, scorecard=card,
                  verdict=verdict, warnings=[]).to_json()


async def test_the_results_screen_puts_the_verdict_first(tmp_path: Path) -> None:
    run = recorded_run(tmp_path)
    report = recorded_report(run)
    (run / "report.json").write_text(json.dumps(report))
    app = FinetuneAdvisorApp(run_dir=str(run))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.push_screen(ResultsScreen(str(run)))
        await pilot.pause()
        assert str(app.screen.query_one("#verdict").render()).startswith("Ready to deploy\nWeighted score 4.00")
        text = screen_text(app)
        assert text.index("Ready to deploy") < text.index("9 of 10 right")  # the verdict first


def test_the_app_starts_without_torch() -> None:
    code = "import sys, advisor.tui, advisor.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_the_real_app_in_tmux(tmp_path: Path) -> None:
    """The installed command in a real terminal at 80x24: keys in, screen text out."""
    import os
    import shutil
    import time

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    from tests.conftest import EXAMPLES

    script = Path(sys.executable).parent / "finetune-advisor"
    session = f"fa-test-{os.getpid()}"
    env = f"HF_HUB_OFFLINE=1 TERM=xterm-256color {script} --answers {EXAMPLES / 'style.yaml'}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", env], check=True)
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True,
                                  text=True).stdout

        deadline = time.time() + 30
        while "Step 1 of 5" not in screen():
            assert time.time() < deadline, screen()
            time.sleep(0.3)
        for _ in range(5):
            subprocess.run(["tmux", "send-keys", "-t", session, "C-n"], check=True)
            time.sleep(0.8)
        deadline = time.time() + 30
        while "Recommended:" not in screen():
            assert time.time() < deadline, screen()
            time.sleep(0.3)
        text = screen()
        assert "P-Tuning v2" in text and "^r Train" in text
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def write_predictions(run: Path, n: int = 6) -> None:
    (run / "eval").mkdir(exist_ok=True)
    for which, answer in (("base", "no idea"), ("tuned", "Paris.")):
        lines = [json.dumps({"index": i, "prompt": f"Capital of France? ({i})", "reference": f"Paris. ({i})",
                             "output": answer, "scores": {}}) for i in range(n)]
        (run / "eval" / f"predictions-{which}.jsonl").write_text("\n".join(lines) + "\n")


async def test_blind_review_adds_the_tuned_win_rate_to_the_report(tmp_path: Path) -> None:
    from advisor.tui.review import BlindReviewScreen
    from runner.review import draw_review

    run = recorded_run(tmp_path)
    write_predictions(run)
    (run / "report.json").write_text(json.dumps(recorded_report(run)))
    review = draw_review(run, n=6)
    items = review.items
    assert {i.tuned_is for i in items} <= {"A", "B"} and len({i.index for i in items}) == 6
    app = FinetuneAdvisorApp(run_dir=str(run))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.push_screen(BlindReviewScreen(str(run), review))
        await pilot.pause()
        for item in items[:5]:  # the reviewer always picks "Paris.", which is the tuned answer
            await pilot.press("a" if item.a == "Paris." else "b")
        await pilot.press("t")
        await pilot.pause()
    preference = json.loads((run / "report.json").read_text())["human_preference"]
    assert (preference["tuned_wins"], preference["base_wins"], preference["ties"]) == (5, 0, 1)
    assert preference["p_value"] == pytest.approx(2 / 32) and preference["tuned_win_rate"] == 1.0
    assert preference["seed"] == review.seed and "1 were ties" in preference["sentence"]
    assert "blind review" in (run / "report.md").read_text()


def test_each_review_draws_its_own_seed_and_all_ties_read_as_ties(tmp_path: Path) -> None:
    from runner.review import draw_review, record_preference

    run = recorded_run(tmp_path)
    write_predictions(run, n=30)
    (run / "report.json").write_text(json.dumps(recorded_report(run)))
    reviews = [draw_review(run, n=5) for _ in range(4)]
    assert len({r.seed for r in reviews}) == 4 and len({tuple(sorted(r.indexes)) for r in reviews}) > 1
    again = draw_review(run, n=5, seed=reviews[0].seed)
    assert again == reviews[0]  # the recorded seed gives back the same examples and sides
    result = record_preference(run, reviews[0], ["tie"] * 5)
    assert (result["ties"], result["tuned_win_rate"], result["p_value"]) == (5, None, 1.0)
    assert "every pair was judged a tie" in result["sentence"] and "0%" not in result["sentence"]


async def test_the_results_screen_never_shows_the_review_examples_labelled(tmp_path: Path) -> None:
    run = recorded_run(tmp_path)
    write_predictions(run, n=14)
    (run / "report.json").write_text(json.dumps(recorded_report(run)))
    app = FinetuneAdvisorApp(run_dir=str(run))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        screen = ResultsScreen(str(run))
        app.push_screen(screen)
        await pilot.pause()
        assert screen.review is not None and len(screen.review.indexes) == 10
        shown = set(screen.shown_indexes)
        assert len(shown) == 4 and not shown & screen.review.indexes


async def test_the_command_palette_offers_the_main_actions(tmp_path: Path) -> None:
    run = recorded_run(tmp_path)
    app = FinetuneAdvisorApp(run_dir=str(run))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Save answers", "Stop training", "Results"} <= titles


async def test_the_model_step_suggests_models_that_fit_and_a_pick_fills_the_field() -> None:
    answers = {"version": 1, "goal": "knowledge", "data": {"examples": 2000},
               "hardware": {"gpus": [{"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24}], "ram_gb": 64}}
    app = FinetuneAdvisorApp(answers)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n", "ctrl+n")  # goal and data from the answers
        await pilot.pause()
        from textual.widgets import Checkbox

        app.screen.query_one("#commercial", Checkbox).value = True  # the box "for commercial use", ticked
        await pilot.press("ctrl+f")
        await app.workers.wait_for_complete()
        await pilot.pause()
        from textual.widgets import OptionList

        options = app.screen.query_one("#suggestions", OptionList)
        first = options.get_option_at_index(0)
        assert first.id and "error kept free" in str(first.prompt) and "commercial use allowed" in str(first.prompt)
        await pilot.press("enter")  # the highlighted (largest) suggestion
        await pilot.pause()
        assert app.screen.query_one("#model-name", Input).value == first.id
        await pilot.press("ctrl+n")
        assert app.answers["model"]["name_or_path"] == first.id and app.answers["use"] == "commercial"


async def test_the_pilot_screen_says_why_a_pilot_cannot_run() -> None:
    """Ctrl+Y on the recommendation: a method fixed by hand leaves nothing to compare, and the screen says so
    (the pilot itself is tested in test_pilot.py)."""
    from advisor.tui.pilot import PilotScreen
    from tests.conftest import EXAMPLES

    raw = {"version": 1, "goal": "knowledge", "data": {"path": str(EXAMPLES / "data" / "product_faq.jsonl")},
           "model": {"name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}, "hardware": {"gpus": [], "ram_gb": 16},
           "overrides": {"method": "lora"}}
    app = FinetuneAdvisorApp(raw)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(PilotScreen(answers_from_dict(raw)))
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PilotScreen)
        outcome = str(screen.query_one("#pilot-outcome").render())
        assert "the pilot cannot run" in outcome and "overrides.method" in outcome
        assert screen.result is None  # nothing to train: Ctrl+R stays off


def footer_keys(app: Any) -> list[str]:
    return [str(key.key_display) for key in app.screen.query("FooterKey") if not key.has_class("-disabled")]


async def test_the_footer_shows_the_keys_of_the_step_that_is_open() -> None:
    # the footer is rebuilt only when its keys change (a quicker first screen): it must still follow the steps
    app = FinetuneAdvisorApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        first = footer_keys(app)
        assert "^n" in first and "^b" not in first and "^g" not in first  # nothing to go back to or check
        await pilot.press("enter")
        await pilot.pause()
        on_data = footer_keys(app)
        assert "^b" in on_data and "^g" in on_data and "^l" not in on_data
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert footer_keys(app) == first
