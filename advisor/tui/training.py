"""The training screen: follows the training process's events.jsonl (it keeps running if the app closes)."""

from __future__ import annotations

import math
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Header, ProgressBar, RichLog, Static
from textual_plotext import PlotextPlot

from advisor.progress import event_markup
from advisor.tui.footer import KeysFooter

__all__ = ["TrainingScreen"]


class TrainingScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+x", "stop", "Stop (checkpoint)"), Binding("ctrl+r", "resume", "Resume"),
                Binding("ctrl+o", "results", "Results")]

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.steps: list[float] = []
        self.losses: list[float] = []
        self.eval_steps: list[float] = []
        self.eval_losses: list[float] = []
        self.finished: dict[str, Any] | None = None
        self.following = False
        """Whether a training process is being followed (False once it ended, until a resume)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"Training: {escape(self.run_dir)}", id="run-title", classes="title")
        yield ProgressBar(total=None, id="progress", show_eta=True)
        yield Static("starting the training process...", id="progress-line")
        yield PlotextPlot(id="loss")
        yield RichLog(id="log", markup=True, wrap=True)
        yield Static("", id="attach-hint", classes="hint")
        with Horizontal(classes="buttons"):
            yield Button("Stop with a checkpoint", id="stop", variant="warning")
            yield Button("Resume", id="resume", disabled=True)
            yield Button("Results", id="results", variant="primary", disabled=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        plot = self.query_one("#loss", PlotextPlot).plt
        plot.title("loss")
        self.app.active_run = self.run_dir  # type: ignore[attr-defined]
        self.start_following()

    def start_following(self) -> None:
        self.following = True
        self.query_one("#attach-hint", Static).update(
            "Quitting (ctrl+q) leaves training running; come back with: "
            f"finetune-advisor attach {escape(self.run_dir)}")
        self.query_one("#stop", Button).disabled = False
        self.query_one("#resume", Button).disabled = True
        self.refresh_bindings()
        self.follow()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Each key is offered when it can act (shown greyed out otherwise)."""
        if action == "stop":
            return self.following or None
        if action == "resume":
            return (not self.following and not self._done()) or None
        if action == "results":
            return self._done() or None
        return True

    def _done(self) -> bool:
        return bool(self.finished and self.finished.get("status") == "done")

    @work(thread=True, exclusive=True, group="follow")
    def follow(self) -> None:
        from runner.events import follow_events
        from runner.rundir import RunDir

        run = RunDir(self.run_dir)
        for event in follow_events(run.events, alive=run.worker_alive):
            self.app.call_from_thread(self.show_event, event)
        self.app.call_from_thread(self.ended)

    def show_event(self, event: dict[str, Any]) -> None:
        """Show one event (also used by tests that replay a recorded events.jsonl)."""
        kind = event.get("kind")
        log = self.query_one("#log", RichLog)
        if kind == "step":
            bar = self.query_one("#progress", ProgressBar)
            bar.update(total=event.get("max_steps") or None, progress=event["step"])
            loss = event.get("loss")
            shown = f"{loss:.4f}" if isinstance(loss, float) else "not reported"
            self.query_one("#progress-line", Static).update(
                f"step {event['step']} of {event.get('max_steps')}, epoch {_epoch(event.get('epoch'))}, "
                f"loss {shown}, {event.get('tokens_per_s', 0):,.0f} tokens/s, {event.get('memory_gb', 0):.2f} GB")
            if isinstance(loss, float):
                self.steps.append(float(event["step"]))
                self.losses.append(loss)
                self.redraw()
        elif kind == "eval":
            self.eval_steps.append(float(event["step"]))
            self.eval_losses.append(float(event["eval_loss"]))
            log.write(f"validation loss {event['eval_loss']:.4f} at step {event['step']}")
            self.redraw()
        elif kind in ("phase", "warning", "error"):
            log.write(event_markup(event) or "")
        elif kind == "done":
            self.finished = event
            status = event.get("status")
            steps = event.get("steps")
            log.write(f"[bold]{status}[/] after {steps} step{'' if steps == 1 else 's'}" +
                      (f": {escape(str(event['message']))}" if event.get("message") else ""))
            self.query_one("#results", Button).disabled = status != "done"
            self.query_one("#stop", Button).disabled = True
            self.refresh_bindings()

    def redraw(self) -> None:
        widget = self.query_one("#loss", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.plot(self.steps, self.losses, label="training")
        if self.eval_steps:
            plt.plot(self.eval_steps, self.eval_losses, label="validation")
        plt.xticks([float(t) for t in _even_ticks(max(self.steps + self.eval_steps, default=1))])
        widget.refresh()

    def ended(self) -> None:
        """The training process is gone: the bar stops, the hint says what is left to do."""
        self.following = False
        bar = self.query_one("#progress", ProgressBar)
        self._show_eta(False)
        if bar.total is None:
            bar.update(total=1, progress=0)
        self.query_one("#stop", Button).disabled = True
        hint = self.query_one("#attach-hint", Static)
        if self._done():
            hint.update("Training finished. Results (ctrl+o) evaluates the tuned model against the base.")
        else:
            if self.finished is None:
                self.query_one("#log", RichLog).write("[red]the training process ended without finishing[/]")
            hint.update("Training stopped. Resume (ctrl+r) continues from the last checkpoint; from a shell: "
                        f"finetune-advisor train --resume {escape(self.run_dir)}")
            self.query_one("#resume", Button).disabled = False
        self.refresh_bindings()

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        from runner.launch import request_stop
        from runner.rundir import RunDir

        if not self.following or not request_stop(RunDir(self.run_dir)):
            self.notify("training is not running: there is nothing to stop", severity="warning")
            return
        self.query_one("#log", RichLog).write("stopping after a checkpoint...")
        self.query_one("#stop", Button).disabled = True

    @on(Button.Pressed, "#resume")
    def action_resume(self) -> None:
        if self.following or self._done():
            self.notify("nothing to resume: " + ("training is running" if self.following else "training finished"),
                        severity="warning")
            return
        self.query_one("#resume", Button).disabled = True
        self.query_one("#log", RichLog).write("resuming from the last checkpoint...")
        self.resume()

    @work(thread=True, exclusive=True, group="resume")
    def resume(self) -> None:
        from advisor.runs import resume_run
        from knowledge.errors import InputError

        try:
            resume_run(self.run_dir)
        except InputError as exc:
            self.app.call_from_thread(self._resume_failed, str(exc))
            return
        self.app.call_from_thread(self._resumed)

    def _resume_failed(self, message: str) -> None:
        self.query_one("#log", RichLog).write(f"[red]cannot resume: {escape(message)}[/]")
        self.query_one("#resume", Button).disabled = False

    def _resumed(self) -> None:
        self.finished = None
        self._show_eta(True)
        self.start_following()

    def _show_eta(self, shown: bool) -> None:
        """The countdown runs only while training does."""
        for eta in self.query("#progress #eta"):
            eta.display = shown

    @on(Button.Pressed, "#results")
    def action_results(self) -> None:
        if not self._done():
            self.notify("the results come once training has finished" +
                        ("" if self.following else "; resume it first (ctrl+r)"), severity="warning")
            return
        from advisor.tui.results import ResultsScreen

        self.app.push_screen(ResultsScreen(self.run_dir))


def _epoch(epoch: Any) -> str:
    return f"{epoch:.2f}" if isinstance(epoch, float) else str(epoch)


def _even_ticks(last: float, most: int = 6) -> list[int]:
    """Whole-step ticks at an even, round spacing (1, 2, 5, 10, 20, 50, ...) from 0 to past `last`."""
    span = max(1, math.ceil(last))
    step = 1
    while span / step > most:
        step = _next_round(step)
    return list(range(0, span + step, step))


def _next_round(step: int) -> int:
    """1 -> 2 -> 5 -> 10 -> 20 -> 50 -> ..."""
    digits = str(step)
    return step * 2 if digits[0] == "1" else step * 5 // 2 if digits[0] == "2" else step * 2
