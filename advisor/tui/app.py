"""The app and the one factory that the CLI and the tests use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.binding import Binding

if TYPE_CHECKING:  # the answers code (and the knowledge it reads) loads when a screen needs it: a quick start
    from textual.screen import Screen

    from advisor.answers import Answers

__all__ = ["FinetuneAdvisorApp", "create_app"]


class FinetuneAdvisorApp(App[int]):
    """finetune-advisor: interview -> recommendation -> training -> results."""

    CSS_PATH = "app.tcss"
    TITLE = "finetune-advisor"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit"), Binding("ctrl+t", "toggle_dark", "Theme", show=False)]

    def __init__(self, answers: dict[str, Any] | None = None, *, source: Path | None = None,
                 run_dir: str | None = None, runs_dir: str = "runs") -> None:
        super().__init__()
        self.answers: dict[str, Any] = answers or {"version": 1}
        """The answers being built, in the answers-file layout (saved as YAML, replayed by `replay`)."""
        self.source = source
        """The answers file the app was opened with; relative paths resolve against its folder."""
        self.run_dir = run_dir
        self.runs_dir = runs_dir
        self.active_run: str | None = None
        """The run the training screen last followed: on quit, the CLI says how to come back to it."""
        self.evaluations: dict[str, Any] = {}
        """Run directory -> its Evaluation (advisor/tui/results.py): one at a time, whichever screen asks."""

    def evaluation(self, run_dir: str) -> Any:
        """The run's evaluation: the one under way (or finished) in this app, else a new one, started."""
        from advisor.tui.results import Evaluation

        job = self.evaluations.get(run_dir)
        if job is None or job.error is not None:
            job = Evaluation(run_dir)
            self.evaluations[run_dir] = job
            self.run_worker(job.run, thread=True, group="evaluate", name=f"evaluate {run_dir}")
        return job

    def get_default_screen(self) -> Screen[Any]:
        """The first screen: the interview, or a run's training screen (no blank screen drawn first)."""
        if self.run_dir:
            from advisor.tui.training import TrainingScreen

            return TrainingScreen(self.run_dir)
        from advisor.tui.interview import InterviewScreen

        return InterviewScreen()

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def get_system_commands(self, screen: Any) -> Any:
        """The main actions in the command palette (ctrl+p), offered where they apply."""
        yield from super().get_system_commands(screen)
        from textual.app import SystemCommand

        from advisor.tui.recommendation import RecommendationScreen
        from advisor.tui.results import ResultsScreen
        from advisor.tui.training import TrainingScreen

        yield SystemCommand("Save answers", "Save the answers so far to a YAML file", self.action_save_answers)
        if isinstance(screen, RecommendationScreen):
            yield SystemCommand("Train", "Start training with these settings", screen.action_train)
            yield SystemCommand("Pilot", "Train the top candidates briefly on your data and compare them",
                                screen.action_pilot)
        if isinstance(screen, TrainingScreen):
            yield SystemCommand("Stop training", "Save a checkpoint and stop", screen.action_stop)
            yield SystemCommand("Results", "Evaluate and show the verdict", screen.action_results)
        if isinstance(screen, ResultsScreen):
            yield SystemCommand("Blind review", "Judge base and tuned answers without knowing which is which",
                                screen.action_review)

    def action_save_answers(self) -> None:
        from advisor.tui.dialogs import SaveDialog
        from advisor.tui.interview import InterviewScreen

        if isinstance(self.screen, InterviewScreen):
            self.screen.keep_shown_goal()

        self.push_screen(SaveDialog(self.suggested_name()), self._save_to)

    def suggested_name(self) -> str:
        return str(self.source) if self.source else "answers.yaml"

    def _save_to(self, path: str | None) -> None:
        if not path:
            return
        from advisor.answers import answers_from_dict, save_answers
        from knowledge.errors import InputError

        try:
            answers = answers_from_dict(self.answers, file="the answers so far", source=self.source)
            saved = save_answers(answers, path, overwrite=Path(path).exists())
        except InputError as exc:
            self.notify(str(exc), title="Not saved", severity="error", timeout=8)
            return
        self.notify(f"saved to {saved} (replay it with: finetune-advisor replay {saved})", title="Saved")


def create_app(answers: Answers | None = None, *, run_dir: str | None = None, runs_dir: str = "runs") -> \
        FinetuneAdvisorApp:
    """The app, pre-filled from answers when given, or opened on a run's training screen."""
    from advisor.answers import answers_to_dict

    data = answers_to_dict(answers) if answers is not None else None
    return FinetuneAdvisorApp(data, source=answers.source if answers else None, run_dir=run_dir, runs_dir=runs_dir)
