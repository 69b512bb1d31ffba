"""The training screen: follows the training process's events.jsonl (it keeps running if the app closes)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Label, ProgressBar, RichLog, Static
from textual_plotext import PlotextPlot

from advisor.progress import event_markup

__all__ = ["TrainingScreen"]


class TrainingScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+x", "stop", "Stop (checkpoint)"), Binding("ctrl+o", "results", "Results")]

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.steps: list[float] = []
        self.losses: list[float] = []
        self.eval_steps: list[float] = []
        self.eval_losses: list[float] = []
        self.finished: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(f"Training: {self.run_dir}", classes="title")
        yield ProgressBar(total=None, id="progress", show_eta=True)
        yield Static("starting the training process...", id="progress-line")
        yield PlotextPlot(id="loss")
        yield RichLog(id="log", markup=True, wrap=True)
        yield Label("Quitting leaves training running; come back with: finetune-advisor attach " + self.run_dir,
                    classes="hint")
        with Horizontal(classes="buttons"):
            yield Button("Stop with a checkpoint", id="stop", variant="warning")
            yield Button("Results", id="results", variant="primary", disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        plot = self.query_one("#loss", PlotextPlot).plt
        plot.title("loss")
        self.follow()

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
            shown = f"{loss:.4f}" if isinstance(loss, float) else str(loss)
            self.query_one("#progress-line", Static).update(
                f"step {event['step']}/{event.get('max_steps')}  epoch {event.get('epoch')}  loss {shown}  "
                f"{event.get('tokens_per_s', 0):.0f} tokens/s  {event.get('memory_gb', 0):.2f} GB")
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
            log.write(f"[bold]{status}[/] after {event.get('steps')} steps" +
                      (f": {escape(str(event['message']))}" if event.get("message") else ""))
            self.query_one("#results", Button).disabled = status != "done"
            self.query_one("#stop", Button).disabled = True

    def redraw(self) -> None:
        widget = self.query_one("#loss", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.plot(self.steps, self.losses, label="training")
        if self.eval_steps:
            plt.plot(self.eval_steps, self.eval_losses, label="validation")
        widget.refresh()

    def ended(self) -> None:
        if self.finished is None:
            self.query_one("#log", RichLog).write(
                "[red]the training process ended without finishing[/]; continue with: finetune-advisor train "
                f"--resume {self.run_dir}")
            self.query_one("#stop", Button).disabled = True

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        from runner.launch import request_stop
        from runner.rundir import RunDir

        request_stop(RunDir(self.run_dir))
        self.query_one("#log", RichLog).write("stopping after a checkpoint...")

    @on(Button.Pressed, "#results")
    def action_results(self) -> None:
        if self.finished and self.finished.get("status") == "done":
            from advisor.tui.results import ResultsScreen

            self.app.push_screen(ResultsScreen(self.run_dir))
