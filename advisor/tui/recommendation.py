"""The recommendation: the method and why, alternatives, editable settings with their advised ranges,
the memory bar and the time estimate. Train starts the training process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Header, Input, Label, Select, Static

from advisor.answers import Answers, answers_from_dict, answers_to_dict
from advisor.tui.footer import KeysFooter
from knowledge.errors import InputError

if TYPE_CHECKING:
    from advisor.recommend import Recommendation

__all__ = ["RecommendationScreen", "EDITABLE"]

#: Settings a user may change here (they become overrides in the answers).
EDITABLE = ("learning_rate", "epochs", "lora_rank", "lora_alpha", "batch_size", "gradient_accumulation",
            "max_length", "num_virtual_tokens")


class RecommendationScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+r", "train", "Train"), Binding("ctrl+l", "apply", "Apply"),
                Binding("ctrl+g", "alternatives", "Other methods"), Binding("ctrl+y", "pilot", "Pilot"),
                Binding("ctrl+s", "app.save_answers", "Save"),
                Binding("escape", "back", "Back")]

    def __init__(self, answers: Answers) -> None:
        super().__init__()
        self.answers = answers
        self.recommendation: Recommendation | None = None
        self.shown: dict[str, str] = {}
        """Each editable setting as the screen shows it, to tell an edit that was not applied."""
        self.applied: dict[str, Any] = {}
        """The changes of the last apply, confirmed once the new recommendation is shown."""

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="recommendation"):
            yield Static("working out a recommendation...", id="method", classes="title")
            yield Static("", id="reasons")
            yield Static("Settings: change a value and press Enter (or ctrl+l) to apply it; the memory and time "
                         "below follow. The answers-file key and the advised range are beside each.", classes="hint")
            yield Vertical(id="settings")
            yield Static("", id="memory-bar")
            yield Static("", id="time")
            yield Static("", id="warnings")
            yield Static("", id="alternatives")
            yield Select([], prompt="train an alternative instead (ctrl+g)", id="alternative", allow_blank=True)
        yield Static("", id="problem", classes="error")
        with Horizontal(classes="buttons"):
            yield Button("Apply", id="apply")
            yield Button("Save answers", id="save")
            yield Button("Train", id="train", variant="primary")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.problem("")
        self.compute()

    def problem(self, text: str) -> None:
        widget = self.query_one("#problem", Static)
        widget.update(escape(text))
        widget.display = bool(text)

    @work(thread=True, exclusive=True, group="recommend")
    def compute(self) -> None:
        from advisor.recommend import gather_inputs, recommend

        try:
            result = recommend(gather_inputs(self.answers))
        except InputError as exc:
            self.app.call_from_thread(self.problem, str(exc))
            return
        self.app.call_from_thread(self.show, result)

    def show(self, rec: Recommendation) -> None:
        from advisor.render import SETTING_NAMES, evidence_lines, memory_bar, memory_legend, processes_line

        self.recommendation = rec
        mem = rec.memory
        self.query_one("#method", Static).update(
            f"Recommended: {escape(rec.method_name)} ({rec.method}), training "
            f"{rec.trainable_params:,} parameters ({rec.trainable_percent:g}%) of {escape(rec.model['name'])}")
        self.query_one("#reasons", Static).update(
            "\n".join(f"• {escape(r)}" for r in rec.reasons)
            + "".join(f"\n[dim]{escape(line)}[/]" for line in evidence_lines(rec)))
        settings = self.query_one("#settings", Vertical)
        settings.remove_children()
        self.shown = {}
        for key in EDITABLE:
            if rec.hyperparameters.get(key) is None:
                continue
            advised = rec.advised_ranges.get(key)
            hint = f", advised {advised[0]:g} to {advised[1]:g}" if advised else ""
            self.shown[key] = _text(rec.hyperparameters[key])
            settings.mount(Horizontal(Label(f"{SETTING_NAMES.get(key, key)} [dim]({key}{hint})[/]"),
                                      Input(self.shown[key], id=f"hp-{key}"), classes="field"))
        fits = "[green]fits[/]" if mem["fits"] else "[red]does not fit[/]"
        self.query_one("#memory-bar", Static).update(
            f"[b]Memory[/]: {escape(mem['summary'])}: {fits}\n{memory_bar(mem['breakdown'], mem['available_gb'])}\n"
            + memory_legend(mem["breakdown"])
            + (f"\nProcesses: {escape(processes_line(rec))}" if processes_line(rec) else ""))
        self.query_one("#time", Static).update(
            f"[b]Time[/]: {escape(rec.time['basis'])}"
            + (f"\nEvaluation afterwards: {escape(rec.time['evaluation_basis'])}" if rec.time.get("evaluation_basis")
               else ""))
        self.query_one("#warnings", Static).update(
            "\n".join(f"[yellow]! {escape(w)}[/]" for w in rec.warnings) or "[green]no warnings[/]")
        self.query_one("#alternatives", Static).update(
            "[b]Alternatives[/]\n" + "\n".join(f"• {a['method']} ({a['estimated_gb']:g} GB): {escape(a['why_not'])}"
                                               for a in rec.alternatives))
        self.query_one("#alternative", Select).set_options([(a["method"], a["method"]) for a in rec.alternatives])
        if self.applied:
            changed = ", ".join(f"{SETTING_NAMES.get(k, k).lower()} {_text(v)}" for k, v in self.applied.items())
            self.notify(f"Applied: {changed}. Memory {mem['summary']}; time {rec.time['basis'].split(':')[0]}.",
                        title="Settings applied")
            self.applied = {}

    def pending(self) -> list[str]:
        """The settings whose field differs from what the recommendation shows (edited, not applied)."""
        return [key for key, shown in self.shown.items()
                if (found := self.query(f"#hp-{key}")) and found.first(Input).value.strip() != shown]

    def _with_overrides(self, **changes: Any) -> Answers:
        data = answers_to_dict(self.answers)
        data["overrides"] = {**data.get("overrides", {}), **changes}
        return answers_from_dict(data, file="your answers", source=self.answers.source)

    @on(Button.Pressed, "#apply")
    @on(Input.Submitted, "#settings Input")
    def action_apply(self) -> None:
        """Re-recommend with the edited settings (validated like an answers file)."""
        from advisor.render import SETTING_NAMES

        if self.recommendation is None:
            return
        changes: dict[str, Any] = {}
        for key in self.pending():
            text = self.query_one(f"#hp-{key}", Input).value.strip()
            old = self.recommendation.hyperparameters.get(key)
            whole = isinstance(old, int) and not isinstance(old, bool)
            try:
                value: Any = int(text) if whole else float(text)
            except ValueError:
                kind = "a whole number" if whole else "a number"
                self.problem(f"{SETTING_NAMES.get(key, key)} ({key}) must be {kind}, got {text!r}")
                return
            if value != old:
                changes[key] = value
        if not changes:
            self.notify("nothing to apply: no setting was changed")
            return
        self.applied = changes
        self._rerun(changes)

    def action_alternatives(self) -> None:
        self.query_one("#alternative", Select).focus()

    @on(Select.Changed, "#alternative")
    def alternative(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.applied = {"method": event.value}
            self._rerun({"method": event.value})

    def _rerun(self, changes: dict[str, Any]) -> None:
        try:
            self.answers = self._with_overrides(**changes)
        except InputError as exc:
            self.applied = {}
            self.problem(str(exc))
            return
        self.app.answers = answers_to_dict(self.answers)  # type: ignore[attr-defined]
        self.problem("")
        self.recommendation = None  # until the new one is shown: Train waits for it
        self.compute()

    def action_pilot(self) -> None:
        """Try the advice on this data first: the recommended method and its strongest alternatives, briefly."""
        from advisor.tui.pilot import PilotScreen

        if self.recommendation is None or self.pending():
            self.problem("apply the settings (or wait for the recommendation) before a pilot")
            return
        self.app.push_screen(PilotScreen(self.answers))

    @on(Button.Pressed, "#save")
    def save(self) -> None:
        self.app.action_save_answers()  # type: ignore[attr-defined]

    def action_back(self) -> None:
        self.app.pop_screen()

    @on(Button.Pressed, "#train")
    def action_train(self) -> None:
        """Train with exactly what the screen shows: an edit that was not applied is refused, not dropped."""
        from advisor.render import SETTING_NAMES

        if self.recommendation is None:
            self.problem("the recommendation is still being worked out; train when it is shown")
            return
        pending = self.pending()
        if pending:
            names = ", ".join(f"{SETTING_NAMES.get(k, k).lower()} ({k})" for k in pending)
            self.problem(f"changed but not applied: {names}. Press Enter in the field or ctrl+l to apply (the "
                         "memory and time follow), then Train.")
            return
        self.problem("checking the data and the model, then starting training...")
        self.start_training()

    @work(thread=True, exclusive=True, group="train")
    def start_training(self) -> None:
        """The checks, the run directory and the training process (advisor/runs.py), off the UI thread."""
        from advisor.runs import start_run

        try:
            started = start_run(self.answers, self.app.runs_dir)  # type: ignore[attr-defined]
        except InputError as exc:
            self.app.call_from_thread(self.problem, str(exc))
            return
        self.app.call_from_thread(self.training_started, str(started.run.path))

    def training_started(self, run_dir: str) -> None:
        from advisor.tui.training import TrainingScreen

        self.problem("")
        self.app.push_screen(TrainingScreen(run_dir))


def _text(value: Any) -> str:
    """A setting as its field shows it: 0.001, not 0.0010000000000000002."""
    return f"{value:g}" if isinstance(value, float) else str(value)
