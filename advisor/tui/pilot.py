"""The pilot from the app: the candidates and their budget, each candidate's training and evaluation as it goes,
then which to train in full with the evidence; Train starts the full run with that choice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Header, RichLog, Static

from advisor.tui.footer import KeysFooter

if TYPE_CHECKING:
    from advisor.answers import Answers

__all__ = ["PilotScreen"]


class PilotScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+r", "train", "Train the choice"), Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, answers: Answers) -> None:
        super().__init__()
        self.answers = answers
        self.result: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("[b]Pilot[/]: the recommended method and its strongest alternatives, each trained briefly on "
                     "your data and scored on the validation split (the test split stays untouched)", id="pilot-title")
        yield RichLog(id="pilot-log", markup=True, wrap=True)
        yield Static("", id="pilot-outcome")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.run_pilot()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "train":
            return self.result is not None or None
        return True

    def say(self, message: str) -> None:
        self.app.call_from_thread(self.query_one("#pilot-log", RichLog).write, escape(message))

    @work(thread=True, exclusive=True, group="pilot")
    def run_pilot(self) -> None:
        from advisor.pilot import plan_pilot, run_pilot
        from knowledge.errors import InputError

        try:
            plan = plan_pilot(self.answers)
            result = run_pilot(plan, self.app.runs_dir, say=self.say)  # type: ignore[attr-defined]
        except InputError as exc:
            self.app.call_from_thread(self.query_one("#pilot-outcome", Static).update,
                                      f"[red]the pilot cannot run: {escape(str(exc))}[/]")
            return
        self.app.call_from_thread(self.finished, result)

    def finished(self, result: dict[str, Any]) -> None:
        from advisor.pilot import decision_headline, pilot_rows

        self.result = result
        d = result["decision"]
        head = f"[b {'green' if d['decided'] else 'yellow'}]{escape(decision_headline(result))}[/]"
        rows = "\n".join("  " + "  ".join(escape(cell) for cell in row) for row in pilot_rows(result))
        self.query_one("#pilot-outcome", Static).update(
            f"{head}: {escape(d['why'])}.\n{rows}\nCtrl+R trains {escape(d['method'])} in full; the pilot's report: "
            f"{escape(result['pilot'])}/pilot.md")
        self.refresh_bindings()

    def action_train(self) -> None:
        if self.result is None:
            return
        self.start_full_run(self.result["winner_answers"])

    @work(thread=True, exclusive=True, group="train")
    def start_full_run(self, path: str) -> None:
        from advisor.answers import load_answers
        from advisor.runs import start_run
        from knowledge.errors import InputError

        try:
            started = start_run(load_answers(path), self.app.runs_dir)  # type: ignore[attr-defined]
        except InputError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._training, str(started.run.path))

    def _training(self, run_dir: str) -> None:
        from advisor.tui.training import TrainingScreen

        self.app.push_screen(TrainingScreen(run_dir))
