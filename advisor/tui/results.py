"""The results screen: the verdict first in plain words, the scorecard with what each score came from, the
statistics in words, labelled examples, and the blind review's result once it is done.

The evaluation runs in the app, not in the screen: leaving and reopening the screen follows the same
evaluation instead of starting a second one (runner/evaluate.py also locks the run against other processes)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, LoadingIndicator, Static

from advisor.tui.footer import KeysFooter

if TYPE_CHECKING:
    from runner.report import Report
    from runner.review import Review

__all__ = ["Evaluation", "ResultsScreen", "verdict_headline"]

#: Test examples a blind review shows, and labelled examples the results screen shows (never the same ones).
REVIEWED, SHOWN = 10, 10


@dataclass
class Evaluation:
    """One evaluation of a run, in a thread of the app: its progress messages, then its report or error."""

    run_dir: str
    started: float = field(default_factory=time.monotonic)
    messages: list[str] = field(default_factory=list)
    report: Report | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.report is not None or self.error is not None

    def run(self) -> None:
        from knowledge.errors import InputError
        from runner.evaluate import evaluate_run

        try:
            self.report = evaluate_run(self.run_dir, progress=self.messages.append)
        except InputError as exc:
            self.error = str(exc)
        except Exception as exc:  # shown on screen; `finetune-advisor evaluate RUN` makes the report again
            self.error = f"{type(exc).__name__}: {exc} (details in the run's eval/evaluate.log)"


def verdict_headline(report: Report) -> str:
    """The verdict in plain words, first: ready or not, and why (rich markup)."""
    ready = report.scorecard["ready"]
    verdict = report.verdict
    if verdict.startswith("inconclusive"):
        head, colour = "Inconclusive: the test set cannot tell yet", "yellow"
    elif ready:
        head, colour = "Ready to deploy", "green"
    else:
        head, colour = "Not ready to deploy yet", "yellow"
    if ready and verdict.startswith("ready to deploy"):
        why = verdict.removeprefix("ready to deploy").strip(" ()")
    else:
        why = verdict.split(":", 1)[1].strip() if ":" in verdict else verdict
    return f"[b {colour}]{head}[/]" + (f"\n{escape(why[0].upper() + why[1:])}" if why else "")


class ResultsScreen(Screen[None]):
    BINDINGS = [Binding("ctrl+v", "review", "Blind review"), Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.review: Review | None = None
        self.report: Report | None = None
        self.shown_indexes: list[int] = []
        """The test examples the screen shows labelled (never those kept for the blind review)."""
        self.evaluation: Evaluation | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Static("", id="verdict")
            yield LoadingIndicator(id="evaluating")
            yield Static("", id="progress-line", classes="hint")
            yield Static("", id="evidence")
            yield Static("", id="scorecard")
            yield Static("", id="examples")
            yield Static("", id="paths", classes="hint")
        yield KeysFooter()

    def on_mount(self) -> None:
        from runner.report import read_report
        from runner.rundir import RunDir

        run = RunDir(self.run_dir)
        if run.report_json.exists():
            self.show(read_report(run))
            return
        self.evaluation = self.app.evaluation(self.run_dir)  # type: ignore[attr-defined]
        self.query_one("#verdict", Static).update(
            "[b]Evaluating[/] the tuned model against the base on the held-out test examples (this loads both "
            "models and generates an answer for each; a few minutes on a CPU)")
        self.set_interval(0.5, self.poll)
        self.poll()

    def on_screen_resume(self) -> None:
        """Back from the blind review: its result joins the evidence."""
        if self.report is not None:
            from runner.report import read_report
            from runner.rundir import RunDir

            self.show(read_report(RunDir(self.run_dir)))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "review":
            return self.review is not None or None
        return True

    def poll(self) -> None:
        job = self.evaluation
        if job is None or self.report is not None:
            return
        if not job.finished:
            last = job.messages[-1] if job.messages else "loading the models"
            self.query_one("#progress-line", Static).update(
                f"{escape(last)} ({time.monotonic() - job.started:.0f} s so far; step {len(job.messages) + 1})")
            return
        self.query_one("#evaluating", LoadingIndicator).display = False
        self.query_one("#progress-line", Static).update("")
        if job.report is not None:
            self.show(job.report)
        else:
            self.query_one("#verdict", Static).update(
                f"[red]evaluation failed: {escape(job.error or '')}[/]\nAfter fixing it, leave (escape) and open "
                "Results again, or run: finetune-advisor evaluate " + escape(self.run_dir))

    def show(self, report: Report) -> None:
        from runner.report import general_sentence, scorecard_rows
        from runner.review import draw_review, read_predictions
        from runner.rundir import RunDir

        self.report = report
        self.query_one("#evaluating", LoadingIndicator).display = False
        self.query_one("#verdict", Static).update(verdict_headline(report))
        lines = ["", escape(report.primary["sentence"]), "",
                 "[dim]The p-value is the chance of a difference this large if both models were equally good; the "
                 "interval is the range of differences the data fit. Better means p < 0.05 and the interval above "
                 "zero; inconclusive means too few examples differ to tell either way.[/]", ""]
        lines += [f"[yellow]gate failed: {escape(g['detail'])}[/]" for g in report.scorecard["gates"]
                  if not g["passed"]]
        lines += [f"[yellow]note: {escape(w)}[/]" for w in report.warnings]
        lines.append(escape(general_sentence(report)))
        if report.human_preference:
            lines += ["", f"[b]Blind review[/]: {escape(report.human_preference['sentence'])}"]
        self.query_one("#evidence", Static).update("\n".join(lines))
        card = Table(title="Scorecard", title_justify="left", expand=True, show_lines=False)
        for name, ratio in (("dimension", 2), ("weight", 1), ("score", 1), ("scored from", 6)):
            card.add_column(name, ratio=ratio, overflow="fold")
        for row in scorecard_rows(report):
            card.add_row(*(escape(cell) for cell in row))
        card.caption = (f"weighted total {report.scorecard['total']:.2f} of 5; ready at "
                        f"{report.scorecard['ready_threshold']:g} or more with every gate passed")
        self.query_one("#scorecard", Static).update(card)
        run = RunDir(self.run_dir)
        try:
            base, tuned = read_predictions(run, "base"), read_predictions(run, "tuned")
            # the blind review's examples are drawn now, and never shown labelled here before it is done
            if report.human_preference:
                self.review = None
            elif self.review is None:
                self.review = draw_review(run.path, n=REVIEWED)
        except OSError:
            base, tuned, self.review = [], [], None
        hidden = self.review.indexes if self.review else set()
        shown = [(b, t) for b, t in zip(base, tuned, strict=False) if b["index"] not in hidden][:SHOWN]
        self.shown_indexes = [b["index"] for b, _ in shown]
        examples = Table(title="Test examples (not the ones kept for the review)", title_justify="left",
                         expand=True, show_lines=True)
        for name in ("reference", "base", "tuned"):
            examples.add_column(name, ratio=1, overflow="fold")
        for b, t in shown:
            examples.add_row(*(escape(_short(x)) for x in (b["reference"], b["output"], t["output"])))
        self.query_one("#examples", Static).update(examples)
        note = (f"\n{len(hidden)} test examples are kept for the blind review (ctrl+v) and not shown labelled until "
                "it is done." if hidden else "")
        artifact = run.path / run.read_plan().artifact
        self.query_one("#paths", Static).update(escape(f"report: {run.report_md}\nadapter or model: {artifact}")
                                                + note)
        self.refresh_bindings()

    def action_review(self) -> None:
        """Blind review of random test answers that this screen has not shown labelled."""
        from advisor.tui.review import BlindReviewScreen

        if self.review is None:
            self.notify("no blind review to do: " + ("it is done; its result is above" if self.report and
                                                     self.report.human_preference else "evaluate the run first"),
                        severity="warning")
            return
        self.app.push_screen(BlindReviewScreen(self.run_dir, self.review))


def _short(value: Any, most: int = 160) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= most else text[:most - 1] + "…"
