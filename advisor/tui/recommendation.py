"""The recommendation: the method and why, alternatives, editable settings with their advised ranges,
the memory bar and the time estimate. Train starts the training process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from advisor.answers import Answers, answers_from_dict, answers_to_dict
from knowledge.errors import InputError

if TYPE_CHECKING:
    from advisor.recommend import Recommendation

__all__ = ["RecommendationScreen", "EDITABLE"]

#: Settings a user may change here (they become overrides in the answers).
EDITABLE = ("learning_rate", "epochs", "lora_rank", "lora_alpha", "batch_size", "gradient_accumulation",
            "max_length", "num_virtual_tokens")


class RecommendationScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+r", "train", "Train"), Binding("ctrl+s", "app.save_answers", "Save"),
                Binding("escape", "back", "Back to the interview")]

    def __init__(self, answers: Answers) -> None:
        super().__init__()
        self.answers = answers
        self.recommendation: Recommendation | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Static("working out a recommendation...", id="method", classes="title")
            yield Static("", id="reasons")
            yield Label("Settings (change a value and press Apply; the advised range is beside it)", classes="hint")
            yield VerticalScroll(id="settings")
            yield Static("", id="memory-bar")
            yield Static("", id="time")
            yield Static("", id="warnings")
            yield Static("", id="alternatives")
        yield Label("", id="problem", classes="error")
        with Horizontal(classes="buttons"):
            yield Select([], prompt="or pick an alternative", id="alternative", allow_blank=True)
            yield Button("Apply", id="apply")
            yield Button("Save answers", id="save")
            yield Button("Train", id="train", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self.compute()

    @work(thread=True, exclusive=True, group="recommend")
    def compute(self) -> None:
        from advisor.recommend import gather_inputs, recommend

        try:
            result = recommend(gather_inputs(self.answers))
        except InputError as exc:
            self.app.call_from_thread(self.query_one("#problem", Label).update, str(exc))
            return
        self.app.call_from_thread(self.show, result)

    def show(self, rec: Recommendation) -> None:
        from advisor.render import memory_bar, processes_line

        self.recommendation = rec
        mem = rec.memory
        self.query_one("#method", Static).update(
            f"Recommended: {escape(rec.method_name)} ({rec.method}), training "
            f"{rec.trainable_params:,} parameters ({rec.trainable_percent:g}%) of {escape(rec.model['name'])}")
        self.query_one("#reasons", Static).update("\n".join(f"• {escape(r)}" for r in rec.reasons))
        settings = self.query_one("#settings", VerticalScroll)
        settings.remove_children()
        for key in EDITABLE:
            if rec.hyperparameters.get(key) is None:
                continue
            advised = rec.advised_ranges.get(key)
            hint = f"  (advised {advised[0]:g} to {advised[1]:g})" if advised else ""
            settings.mount(Horizontal(Label(f"{key}{hint}"), Input(str(rec.hyperparameters[key]), id=f"hp-{key}"),
                                      classes="field"))
        fits = "[green]fits[/]" if mem["fits"] else "[red]does not fit[/]"
        self.query_one("#memory-bar", Static).update(
            f"Memory: {escape(mem['summary'])}: {fits}\n{memory_bar(mem['breakdown'], mem['available_gb'])}\n"
            + ", ".join(f"{k.replace('_', ' ')} {v:g} GB" for k, v in mem["breakdown"].items())
            + (f"\nProcesses: {escape(processes_line(rec))}" if processes_line(rec) else ""))
        self.query_one("#time", Static).update(f"Time: {escape(rec.time['basis'])}"
                                               + (f"\n[dim]{escape(rec.time['formula'])}[/]"
                                                  if rec.time.get("formula") else ""))
        self.query_one("#warnings", Static).update(
            "\n".join(f"[yellow]! {escape(w)}[/]" for w in rec.warnings) or "[green]no warnings[/]")
        self.query_one("#alternatives", Static).update(
            "Alternatives:\n" + "\n".join(f"• {a['method']} ({a['estimated_gb']:g} GB): {escape(a['why_not'])}"
                                           for a in rec.alternatives))
        self.query_one("#alternative", Select).set_options([(a["method"], a["method"]) for a in rec.alternatives])

    def _with_overrides(self, **changes: Any) -> Answers:
        data = answers_to_dict(self.answers)
        data["overrides"] = {**data.get("overrides", {}), **changes}
        return answers_from_dict(data, file="your answers", source=self.answers.source)

    @on(Button.Pressed, "#apply")
    def apply(self) -> None:
        """Re-recommend with the edited settings (validated like an answers file)."""
        changes: dict[str, Any] = {}
        for key in EDITABLE:
            found = self.query(f"#hp-{key}")
            if not found:
                continue
            text = found.first(Input).value.strip()
            old = self.recommendation.hyperparameters.get(key) if self.recommendation else None
            try:
                value: Any = int(text) if isinstance(old, int) and not isinstance(old, bool) else float(text)
            except ValueError:
                self.query_one("#problem", Label).update(f"{key}: {text!r} is not a number")
                return
            if value != old:
                changes[key] = value
        self._rerun(changes)

    @on(Select.Changed, "#alternative")
    def alternative(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._rerun({"method": event.value})

    def _rerun(self, changes: dict[str, Any]) -> None:
        try:
            self.answers = self._with_overrides(**changes)
        except InputError as exc:
            self.query_one("#problem", Label).update(str(exc))
            return
        self.app.answers = answers_to_dict(self.answers)  # type: ignore[attr-defined]
        self.query_one("#problem", Label).update("")
        self.compute()

    @on(Button.Pressed, "#save")
    def save(self) -> None:
        self.app.action_save_answers()  # type: ignore[attr-defined]

    def action_back(self) -> None:
        self.app.pop_screen()

    @on(Button.Pressed, "#train")
    def action_train(self) -> None:
        self.query_one("#problem", Label).update("checking the data and the model, then starting training...")
        self.start_training()

    @work(thread=True, exclusive=True, group="train")
    def start_training(self) -> None:
        """The checks, the run directory and the training process (advisor/runs.py), off the UI thread."""
        from advisor.runs import start_run

        try:
            started = start_run(self.answers, self.app.runs_dir)  # type: ignore[attr-defined]
        except InputError as exc:
            self.app.call_from_thread(self.query_one("#problem", Label).update, str(exc))
            return
        self.app.call_from_thread(self.training_started, str(started.run.path))

    def training_started(self, run_dir: str) -> None:
        from advisor.tui.training import TrainingScreen

        self.query_one("#problem", Label).update("")
        self.app.push_screen(TrainingScreen(run_dir))
